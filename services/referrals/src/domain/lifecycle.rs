//! The referral state machine.
//!
//! ```text
//! submitted ──► offered ──► accepted ──► in_progress ──► closed(outcome)
//!    │   ▲        │  ▲
//!    │   └── declined / offer expired: re-match, never the same structure twice
//!    ▼           │
//! waitlisted ◄───┘  (no feasible structure with capacity, or attempts exhausted → escalated)
//! any state before closed ──► cancelled (by the referrer)
//! ```
//!
//! After a decline or an expiry the referral is `submitted` again until the matcher's
//! next proposal. Closing straight from `accepted` is allowed (a person who could never
//! be reached is closed as `unreachable`).

use contracts::ReferralStatus::{self, *};

/// Everything that can happen to a referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The matcher proposed a structure.
    Offer,
    /// The matcher found nothing.
    Waitlist,
    Accept,
    Decline,
    Expire,
    Contact,
    Close,
    Cancel,
    /// A coordinator asks for another routing.
    Reroute,
    /// The accepting structure sets (or moves) an appointment: the follow-up is under way.
    Appoint,
    /// It cancels the appointment, or records whether the person came.
    FollowAppointment,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Offer => "offer",
            Action::Waitlist => "waitlist",
            Action::Accept => "accept",
            Action::Decline => "decline",
            Action::Expire => "expire",
            Action::Contact => "record a contact on",
            Action::Close => "close",
            Action::Cancel => "cancel",
            Action::Reroute => "reroute",
            Action::Appoint => "set an appointment on",
            Action::FollowAppointment => "follow an appointment of",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a referral that is {}", .action.verb(), .status)]
pub struct NotAllowed {
    pub status: ReferralStatus,
    pub action: Action,
}

/// The status after `action`, or why it is not allowed now.
pub fn transition(status: ReferralStatus, action: Action) -> Result<ReferralStatus, NotAllowed> {
    let next = match (status, action) {
        (Submitted | Waitlisted, Action::Offer) => Offered,
        (Submitted | Waitlisted, Action::Waitlist) => Waitlisted,
        (Offered, Action::Accept) => Accepted,
        (Offered, Action::Decline | Action::Expire) => Submitted,
        (Accepted | InProgress, Action::Contact | Action::Appoint) => InProgress,
        (InProgress, Action::FollowAppointment) => InProgress,
        (Accepted | InProgress, Action::Close) => Closed,
        (Submitted | Offered | Waitlisted | Accepted | InProgress, Action::Cancel) => Cancelled,
        (Submitted | Offered | Waitlisted, Action::Reroute) => Submitted,
        _ => return Err(NotAllowed { status, action }),
    };
    Ok(next)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_goes_from_submission_to_closure() {
        let mut s = Submitted;
        for a in [Action::Offer, Action::Accept, Action::Contact, Action::Contact, Action::Close] {
            s = transition(s, a).unwrap();
        }
        assert_eq!(s, Closed);
    }

    #[test]
    fn a_declined_or_expired_offer_goes_back_to_matching() {
        assert_eq!(transition(Offered, Action::Decline).unwrap(), Submitted);
        assert_eq!(transition(Offered, Action::Expire).unwrap(), Submitted);
        assert_eq!(transition(Waitlisted, Action::Offer).unwrap(), Offered);
    }

    #[test]
    fn closed_and_cancelled_referrals_never_change() {
        let actions = [
            Action::Offer,
            Action::Waitlist,
            Action::Accept,
            Action::Decline,
            Action::Expire,
            Action::Contact,
            Action::Close,
            Action::Cancel,
            Action::Reroute,
            Action::Appoint,
            Action::FollowAppointment,
        ];
        for status in [Closed, Cancelled] {
            for a in actions {
                assert_eq!(transition(status, a), Err(NotAllowed { status, action: a }));
            }
        }
    }

    #[test]
    fn the_refusal_names_the_current_status() {
        let err = transition(Closed, Action::Cancel).unwrap_err();
        assert_eq!(err.to_string(), "cannot cancel a referral that is closed");
    }

    #[test]
    fn accepting_needs_an_offer_and_contact_needs_acceptance() {
        assert!(transition(Submitted, Action::Accept).is_err());
        assert!(transition(Waitlisted, Action::Accept).is_err());
        assert!(transition(Offered, Action::Contact).is_err());
        assert!(transition(Offered, Action::Close).is_err());
        assert!(transition(Accepted, Action::Reroute).is_err());
    }

    #[test]
    fn an_appointment_needs_acceptance_and_puts_the_follow_up_under_way() {
        assert_eq!(transition(Accepted, Action::Appoint).unwrap(), InProgress);
        assert_eq!(transition(InProgress, Action::Appoint).unwrap(), InProgress);
        assert_eq!(transition(InProgress, Action::FollowAppointment).unwrap(), InProgress);
        for status in [Submitted, Offered, Waitlisted, Closed, Cancelled] {
            assert!(transition(status, Action::Appoint).is_err());
        }
        // Nothing to cancel or attend before one was set (which moves it to in progress).
        assert!(transition(Accepted, Action::FollowAppointment).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_sequence_of_actions_stays_inside_the_lifecycle(actions in proptest::collection::vec(0usize..11, 0..40)) {
            let all = [
                Action::Offer, Action::Waitlist, Action::Accept, Action::Decline, Action::Expire,
                Action::Contact, Action::Close, Action::Cancel, Action::Reroute, Action::Appoint,
                Action::FollowAppointment,
            ];
            let mut s = Submitted;
            let mut accepted = false;
            for i in actions {
                let before = s;
                match transition(s, all[i]) {
                    Ok(next) => {
                        proptest::prop_assert!(!before.is_final());
                        if next == Accepted { accepted = true; }
                        // Nothing goes back to before acceptance once accepted.
                        if accepted && !next.is_final() {
                            proptest::prop_assert!(matches!(next, Accepted | InProgress));
                        }
                        s = next;
                    }
                    Err(e) => proptest::prop_assert_eq!(e.status, before),
                }
            }
        }
    }
}
