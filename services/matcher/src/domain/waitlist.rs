//! Who is served first when capacity appears, and what happens when an offer ends.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use contracts::Urgency;

/// A waiting referral, as far as its priority goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub urgency: Urgency,
    pub deadline: Option<NaiveDate>,
    pub submitted_at: DateTime<Utc>,
    pub referral_id: uuid::Uuid,
}

/// Urgent first, then the nearest deadline (none last), then the oldest; the id keeps
/// the order total.
pub fn priority(a: &Waiting, b: &Waiting) -> Ordering {
    let urgent = |w: &Waiting| w.urgency == Urgency::Urgent;
    urgent(b)
        .cmp(&urgent(a))
        .then_with(|| match (a.deadline, b.deadline) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.submitted_at.cmp(&b.submitted_at))
        .then_with(|| a.referral_id.cmp(&b.referral_id))
}

/// After an offer was declined or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterOffer {
    /// Try the next structure.
    Rematch,
    /// Enough structures were tried: a coordinator has to look at it.
    Escalate,
}

pub fn after_offer(offers_made: u32, max_attempts: u32) -> AfterOffer {
    if offers_made >= max_attempts { AfterOffer::Escalate } else { AfterOffer::Rematch }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn w(urgency: Urgency, deadline: Option<&str>, minutes_ago: i64) -> Waiting {
        Waiting {
            urgency,
            deadline: deadline.map(|d| d.parse().unwrap()),
            submitted_at: Utc::now() - chrono::Duration::minutes(minutes_ago),
            referral_id: uuid::Uuid::now_v7(),
        }
    }

    #[test]
    fn urgent_first_then_nearest_deadline_then_oldest() {
        let old_normal = w(Urgency::Normal, None, 600);
        let new_urgent = w(Urgency::Urgent, None, 1);
        let deadline_soon = w(Urgency::Normal, Some("2026-12-01"), 5);
        let deadline_later = w(Urgency::Normal, Some("2026-12-20"), 500);
        let mut all = vec![old_normal.clone(), deadline_later.clone(), new_urgent.clone(), deadline_soon.clone()];
        all.sort_by(priority);
        assert_eq!(all, vec![new_urgent, deadline_soon, deadline_later, old_normal]);
    }

    #[test]
    fn escalation_comes_after_the_maximum_number_of_offers() {
        assert_eq!(after_offer(1, 3), AfterOffer::Rematch);
        assert_eq!(after_offer(2, 3), AfterOffer::Rematch);
        assert_eq!(after_offer(3, 3), AfterOffer::Escalate);
    }
}
