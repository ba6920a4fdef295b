//! Who can answer an offer. A structure is reachable when someone there would see it: a
//! mediator whose account signed in within the active window, or a public e-mail address
//! that has not refused mail for good (the offer then goes by e-mail, with an answer
//! link). Matching never offers a structure that is not.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// What decides whether a structure is reachable, as the matcher's read model keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reach {
    /// The directory has announced the structure since the matcher began keeping its
    /// contact details. One it has not is taken as having an address (as before this
    /// rule, it is offered) until the directory announces it again or an offer's e-mail
    /// bounces.
    pub contact_known: bool,
    /// It has a public e-mail address.
    pub has_email: bool,
    /// That address refused an offer's e-mail for good (SMTP 5xx), and has not changed since.
    pub email_bounced: bool,
    /// The latest sign-in of its mediators' accounts.
    pub mediator_signed_in_at: Option<DateTime<Utc>>,
}

impl Reach {
    pub fn reachable(&self, now: DateTime<Utc>, active_within: Duration) -> bool {
        let address = self.has_email || !self.contact_known;
        (address && !self.email_bounced) || mediator_active(self.mediator_signed_in_at, now, active_within)
    }
}

/// A mediator is active when their account signed in within `active_within` of `now`,
/// both ends included (a sign-in stamped slightly ahead of this clock counts too).
pub fn mediator_active(last_signed_in_at: Option<DateTime<Utc>>, now: DateTime<Utc>, active_within: Duration) -> bool {
    let window = chrono::Duration::from_std(active_within).unwrap_or(chrono::Duration::MAX);
    last_signed_in_at.is_some_and(|at| now.signed_duration_since(at) <= window)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NINETY_DAYS: Duration = Duration::from_secs(90 * 86_400);

    fn now() -> DateTime<Utc> {
        "2026-12-10T10:00:00Z".parse().unwrap()
    }

    fn known() -> Reach {
        Reach { contact_known: true, ..Reach::default() }
    }

    #[test]
    fn the_active_window_includes_its_boundary_and_not_a_second_more() {
        let boundary = now() - chrono::Duration::days(90);
        assert!(mediator_active(Some(boundary), now(), NINETY_DAYS));
        assert!(!mediator_active(Some(boundary - chrono::Duration::seconds(1)), now(), NINETY_DAYS));
        assert!(mediator_active(Some(now() + chrono::Duration::minutes(1)), now(), NINETY_DAYS));
        assert!(!mediator_active(None, now(), NINETY_DAYS));
        // The window is a setting.
        let thirty = Duration::from_secs(30 * 86_400);
        assert!(!mediator_active(Some(now() - chrono::Duration::days(31)), now(), thirty));
    }

    #[test]
    fn an_active_mediator_or_an_address_that_takes_mail_makes_a_structure_reachable() {
        let nobody = known();
        assert!(!nobody.reachable(now(), NINETY_DAYS));
        let email = Reach { has_email: true, ..known() };
        assert!(email.reachable(now(), NINETY_DAYS));
        let bounced = Reach { email_bounced: true, ..email };
        assert!(!bounced.reachable(now(), NINETY_DAYS), "an address that bounced for good is no way in");
        let mediator = Reach { mediator_signed_in_at: Some(now() - chrono::Duration::days(10)), ..bounced };
        assert!(mediator.reachable(now(), NINETY_DAYS), "an active mediator answers whatever the address");
        let lapsed = Reach { mediator_signed_in_at: Some(now() - chrono::Duration::days(91)), ..known() };
        assert!(!lapsed.reachable(now(), NINETY_DAYS), "a mediator who has not signed in for 91 days");
        // Time alone makes a structure unreachable: the same record, a day later.
        let at_edge = Reach { mediator_signed_in_at: Some(now() - chrono::Duration::days(90)), ..known() };
        assert!(at_edge.reachable(now(), NINETY_DAYS));
        assert!(!at_edge.reachable(now() + chrono::Duration::days(1), NINETY_DAYS));
    }

    #[test]
    fn a_structure_not_announced_since_the_rule_began_stays_reachable_until_its_mail_bounces() {
        assert!(Reach::default().reachable(now(), NINETY_DAYS));
        assert!(!Reach { email_bounced: true, ..Reach::default() }.reachable(now(), NINETY_DAYS));
    }
}
