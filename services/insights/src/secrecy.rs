//! Statistical secrecy of the open statistics: which cells of a month's table are
//! published. Pure: the figures in, what may be shown out.
//!
//! A month's table has one row per département and a national row, and six counts per
//! row. The table publishes one linear relation per count column: the départements'
//! cells add up to the national cell. The rate (`reorientees ÷ proposees`) ties two
//! cells of a row together, and the median stands on its own.
//!
//! - **Primary suppression**: a count from 1 to 4 is hidden (0 is published).
//! - **Secondary suppression**: a column whose relation holds exactly one hidden cell
//!   gets a second one (the smallest positive département cell, else the national
//!   cell), so that no hidden cell is the single unknown of its relation. The relations
//!   are disjoint (a cell is in the relation of its own column and month only), so with
//!   two unknowns or more in each, none is determined.
//! - **Rates and medians**: the rate is hidden when it stands on fewer than 5 offered
//!   referrals or when either of its two counts is hidden (else the rate and one count
//!   would give the other back); the median delay to acceptance is hidden when it stands
//!   on fewer than 5 accepted referrals or when that count is hidden.

/// The six counts of a row, in the files' order.
pub const COUNTS: [&str; 6] =
    ["orientations", "proposees", "acceptees", "reorientees", "en_attente", "accompagnements_realises"];
pub const ORIENTATIONS: usize = 0;
pub const PROPOSEES: usize = 1;
pub const ACCEPTEES: usize = 2;
pub const REORIENTEES: usize = 3;
pub const EN_ATTENTE: usize = 4;
pub const ACCOMPAGNEMENTS: usize = 5;
pub const MEDIAN: &str = "delai_acceptation_mediane_jours";
pub const RATE: &str = "taux_reorientation";

/// The smallest count that is ever published, besides 0.
pub const THRESHOLD: i64 = 5;

/// One row's true figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub counts: [i64; 6],
    /// Days from submission to acceptance, median over the accepted referrals.
    pub median_days: Option<f64>,
}

impl Figures {
    /// `reorientees ÷ proposees`, two decimals; `None` when nothing was offered.
    pub fn rate(&self) -> Option<f64> {
        let offered = self.counts[PROPOSEES];
        (offered > 0).then(|| (self.counts[REORIENTEES] as f64 / offered as f64 * 100.0).round() / 100.0)
    }
}

/// One row as published: `None` is a hidden cell (or a rate or median there is none of);
/// `secret` names the hidden columns, in the files' order.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub counts: [Option<i64>; 6],
    pub median_days: Option<f64>,
    pub rate: Option<f64>,
    pub secret: Vec<&'static str>,
}

/// One month: the national row and the départements' rows.
#[derive(Debug, Clone)]
pub struct Month<'a> {
    pub national: &'a Figures,
    pub departements: &'a [Figures],
}

/// What a month's table may show: the national row, then the départements' rows in the
/// order given.
pub fn publish(month: Month<'_>) -> (Published, Vec<Published>) {
    let hidden = hidden_counts(month.national, month.departements);
    let national = row(month.national, hidden[0]);
    let departements = month.departements.iter().zip(&hidden[1..]).map(|(f, h)| row(f, *h)).collect();
    (national, departements)
}

fn primary(value: i64) -> bool {
    (1..THRESHOLD).contains(&value)
}

/// Which counts are hidden: index 0 is the national row, then the départements.
pub fn hidden_counts(national: &Figures, departements: &[Figures]) -> Vec<[bool; 6]> {
    let mut hidden: Vec<[bool; 6]> =
        std::iter::once(national).chain(departements).map(|f| f.counts.map(primary)).collect();
    for column in 0..COUNTS.len() {
        let count = hidden.iter().filter(|h| h[column]).count();
        if count != 1 {
            continue;
        }
        // The smallest positive département cell still shown protects the hidden one
        // best; without any, the national cell.
        let partner = departements
            .iter()
            .enumerate()
            .filter(|(i, f)| !hidden[i + 1][column] && f.counts[column] > 0)
            .min_by_key(|(i, f)| (f.counts[column], *i))
            .map(|(i, _)| i + 1)
            .or_else(|| (!hidden[0][column]).then_some(0))
            .or_else(|| (1..hidden.len()).find(|i| !hidden[*i][column]));
        if let Some(p) = partner {
            hidden[p][column] = true;
        }
    }
    hidden
}

fn row(f: &Figures, hidden: [bool; 6]) -> Published {
    let mut secret: Vec<&'static str> = COUNTS.iter().zip(hidden).filter(|(_, h)| *h).map(|(c, _)| *c).collect();
    let counts = std::array::from_fn(|i| (!hidden[i]).then_some(f.counts[i]));
    let accepted = f.counts[ACCEPTEES];
    let median_days = match f.median_days {
        Some(_) if accepted < THRESHOLD || hidden[ACCEPTEES] => {
            secret.push(MEDIAN);
            None
        }
        m => m,
    };
    let offered = f.counts[PROPOSEES];
    let rate = match f.rate() {
        Some(_) if offered < THRESHOLD || hidden[PROPOSEES] || hidden[REORIENTEES] => {
            secret.push(RATE);
            None
        }
        r => r,
    };
    Published { counts, median_days, rate, secret }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use proptest::prelude::*;

    use super::*;

    fn figures(counts: [i64; 6], median_days: Option<f64>) -> Figures {
        Figures { counts, median_days }
    }

    /// Sums the départements into the national row, as the facts do.
    fn national(departements: &[Figures]) -> Figures {
        let counts = std::array::from_fn(|c| departements.iter().map(|d| d.counts[c]).sum());
        Figures { counts, median_days: Some(3.0) }
    }

    #[test]
    fn a_departement_with_3_referrals_is_hidden_and_one_with_200_is_published() {
        let small = figures([3, 3, 2, 1, 0, 0], Some(1.5));
        let large = figures([200, 180, 150, 40, 12, 90], Some(2.5));
        let other = figures([30, 25, 20, 6, 0, 10], Some(4.0));
        let deps = [small, large, other];
        let n = national(&deps);
        let (nat, rows) = publish(Month { national: &n, departements: &deps });
        // Everything of the small one is hidden but its zeros, with its rate and median.
        assert_eq!(rows[0].counts, [None, None, None, None, Some(0), Some(0)]);
        assert_eq!(rows[0].median_days, None);
        assert_eq!(rows[0].rate, None);
        assert_eq!(rows[0].secret, vec!["orientations", "proposees", "acceptees", "reorientees", MEDIAN, RATE]);
        // Secondary suppression: the other, smaller, département gives up the same cells,
        // so the national row minus the large one does not give the small one back.
        assert_eq!(rows[2].counts, [None, None, None, None, Some(0), Some(10)]);
        assert_eq!(rows[2].rate, None, "its counts are hidden, so its rate is");
        assert_eq!(rows[2].median_days, None);
        // The large one and the national row are whole.
        assert_eq!(rows[1].counts.map(Option::unwrap), [200, 180, 150, 40, 12, 90]);
        assert_eq!(rows[1].rate, Some(0.22));
        assert_eq!(rows[1].median_days, Some(2.5));
        assert!(rows[1].secret.is_empty());
        assert_eq!(nat.counts.map(Option::unwrap), [233, 208, 172, 47, 12, 100]);
        assert!(nat.secret.is_empty());
    }

    #[test]
    fn a_lone_small_departement_hides_the_national_cell_too() {
        let deps = [figures([3, 0, 0, 0, 0, 0], None)];
        let n = national(&deps);
        let (nat, rows) = publish(Month { national: &n, departements: &deps });
        assert_eq!(nat.counts[ORIENTATIONS], None);
        assert_eq!(rows[0].counts[ORIENTATIONS], None);
        // Nothing was offered: no rate at all, which is not a secret.
        assert_eq!(rows[0].secret, vec!["orientations"]);
    }

    #[test]
    fn a_rate_or_median_over_fewer_than_5_is_hidden_even_when_the_counts_are_not() {
        // 0 offered of 6: no rate; 5 accepted: a median.
        let f = figures([6, 0, 0, 0, 0, 0], None);
        assert_eq!(row(&f, [false; 6]).secret, Vec::<&str>::new());
        let f = figures([9, 9, 5, 0, 0, 0], Some(1.0));
        let p = row(&f, [false; 6]);
        assert_eq!((p.rate, p.median_days), (Some(0.0), Some(1.0)));
        // Hidden by secondary suppression, the base hides the rate and the median.
        let p = row(&f, [false, true, true, false, false, false]);
        assert_eq!(p.secret, vec!["proposees", "acceptees", MEDIAN, RATE]);
    }

    /// Rank of a matrix over the rationals (small integer-like entries), by Gaussian
    /// elimination with partial pivoting.
    fn rank(mut m: Vec<Vec<f64>>) -> usize {
        let cols = m.first().map_or(0, Vec::len);
        let mut r = 0;
        for c in 0..cols {
            let Some(p) = (r..m.len()).max_by(|a, b| m[*a][c].abs().total_cmp(&m[*b][c].abs())) else { break };
            if m[p][c].abs() < 1e-9 {
                continue;
            }
            m.swap(r, p);
            for i in 0..m.len() {
                if i != r {
                    let k = m[i][c] / m[r][c];
                    for j in 0..cols {
                        m[i][j] -= k * m[r][j];
                    }
                }
            }
            r += 1;
        }
        r
    }

    fn departement() -> impl Strategy<Value = Figures> {
        // Small counts on purpose: most cells are near the threshold.
        (0i64..40, 0u32..=100, 0u32..=100, 0u32..=100, 0u32..=100, 0u32..=100, 0.0f64..30.0).prop_map(
            |(n, o, a, r, w, c, median)| {
                let share = |of: i64, p: u32| of * i64::from(p) / 100;
                let offered = share(n, o);
                let accepted = share(offered, a);
                let counts = [n, offered, accepted, share(offered, r), share(n - offered, w), share(accepted, c)];
                Figures { counts, median_days: (accepted > 0).then_some(median) }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the table, no published count is from 1 to 4, what is published is
        /// true, and no hidden count is determined by the relations the table publishes:
        /// the column sums (départements = national), and each published rate with its
        /// row's counts. Exact rank argument: a hidden cell is determined iff its unit
        /// vector lies in the row space of the relations restricted to the hidden cells.
        #[test]
        fn no_hidden_value_is_determined_by_what_is_published(
            deps in proptest::collection::vec(departement(), 1..8),
        ) {
            let n = national(&deps);
            let (nat, rows) = publish(Month { national: &n, departements: &deps });
            let all: Vec<(&Figures, &Published)> = std::iter::once((&n, &nat)).chain(deps.iter().zip(&rows)).collect();
            // The unknowns: every hidden count, as (row, column).
            let mut unknowns = Vec::new();
            for (r, (f, p)) in all.iter().enumerate() {
                for c in 0..COUNTS.len() {
                    match p.counts[c] {
                        Some(v) => {
                            prop_assert_eq!(v, f.counts[c]);
                            prop_assert!(!(1..THRESHOLD).contains(&v), "published {} in {}", v, COUNTS[c]);
                        }
                        None => unknowns.push((r, c)),
                    }
                }
                if let Some(rate) = p.rate {
                    prop_assert!(f.counts[PROPOSEES] >= THRESHOLD);
                    prop_assert_eq!(Some(rate), f.rate());
                }
                if p.median_days.is_some() {
                    prop_assert!(f.counts[ACCEPTEES] >= THRESHOLD);
                }
                let named: Vec<&str> = COUNTS.iter().enumerate().filter(|(c, _)| p.counts[*c].is_none()).map(|(_, n)| *n).collect();
                prop_assert_eq!(&p.secret[..named.len()], &named[..]);
            }
            let index = |r: usize, c: usize| unknowns.iter().position(|u| *u == (r, c));
            // The relations, restricted to the unknowns (published cells are constants).
            let mut relations: Vec<Vec<f64>> = Vec::new();
            for c in 0..COUNTS.len() {
                let mut rel = vec![0.0; unknowns.len()];
                for r in 0..all.len() {
                    if let Some(i) = index(r, c) {
                        rel[i] = if r == 0 { -1.0 } else { 1.0 };
                    }
                }
                relations.push(rel);
            }
            for (r, (_, p)) in all.iter().enumerate() {
                if let Some(rate) = p.rate {
                    // reorientees = rate × proposees (exact when rate is not rounded).
                    let mut rel = vec![0.0; unknowns.len()];
                    if let Some(i) = index(r, REORIENTEES) { rel[i] = 1.0; }
                    if let Some(i) = index(r, PROPOSEES) { rel[i] = -rate.max(0.01); }
                    relations.push(rel);
                }
            }
            let base = rank(relations.clone());
            for (i, (r, c)) in unknowns.iter().enumerate() {
                let mut with = relations.clone();
                let mut unit = vec![0.0; unknowns.len()];
                unit[i] = 1.0;
                with.push(unit);
                prop_assert!(rank(with) > base, "hidden {} of row {} is determined", COUNTS[*c], r);
                // The simpler view of the same: another hidden cell in its column.
                prop_assert!(unknowns.iter().filter(|u| u.1 == *c).count() >= 2);
            }
        }
    }
}
