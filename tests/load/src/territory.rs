//! The synthetic territory: structures placed on the real communes of a département and
//! people living there, both drawn by population, with needs, languages and constraints
//! in realistic proportions. Nothing here does I/O.

use anyhow::{Context, bail};
use chrono::{Duration, Utc};
use geo::Commune;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

/// The 9 services of the Mednum standard, with how often a structure offers each and
/// how often a person needs each (administrative help and everyday digital skills
/// dominate both).
const SERVICES: [(&str, f64, f64); 9] = [
    ("aide_demarches_administratives", 10.0, 12.0),
    ("maitrise_outils_numeriques", 8.0, 8.0),
    ("insertion_professionnelle", 3.0, 2.0),
    ("utilisation_securisee", 3.0, 1.5),
    ("parentalite_education", 1.5, 0.7),
    ("loisirs_creations", 1.0, 0.3),
    ("comprehension_monde_numerique", 1.5, 0.5),
    ("acces_internet_materiel", 2.0, 1.5),
    ("acquisition_materiel_solidaire", 1.0, 0.5),
];

const ACCESSIBILITY: [(&str, f64); 5] =
    [("motor", 6.0), ("visual", 1.5), ("deaf", 1.0), ("mental", 1.0), ("illiteracy", 2.0)];

const FOREIGN_LANGUAGES: [&str; 3] = ["en", "ar", "es"];

const OPENING_HOURS: [&str; 4] =
    ["Mo-Fr 09:00-12:00,14:00-17:00", "Mo-Fr 10:00-12:00,14:00-17:30", "Tu-Sa 09:00-12:30", "Mo,We,Fr 09:00-17:00"];

const FIRST_NAMES: [&str; 12] =
    ["Camille", "Amina", "Jean", "Nadia", "Louis", "Fatou", "Marie", "Youssef", "Claire", "Pierre", "Inès", "Luc"];

/// Picks among items with probability proportional to weights (cumulative table).
#[derive(Debug, Clone)]
struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    fn new(weights: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut total = 0.0;
        let cumulative: Vec<f64> = weights
            .into_iter()
            .map(|w| {
                total += w.max(0.0);
                total
            })
            .collect();
        (total > 0.0).then_some(Self { cumulative })
    }

    fn pick(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.random_range(0.0..total);
        self.cumulative.partition_point(|c| *c <= x).min(self.cumulative.len() - 1)
    }
}

/// `k` distinct items drawn by weight.
fn pick_distinct<'a>(rng: &mut impl Rng, items: &[(&'a str, f64)], k: usize) -> Vec<&'a str> {
    let mut pool: Vec<(&str, f64)> = items.to_vec();
    let mut out = Vec::with_capacity(k);
    while out.len() < k && !pool.is_empty() {
        let Some(w) = Weighted::new(pool.iter().map(|(_, w)| *w)) else { break };
        let i = w.pick(rng);
        out.push(pool.swap_remove(i).0);
    }
    out
}

fn chance(rng: &mut impl Rng, p: f64) -> bool {
    rng.random_bool(p.clamp(0.0, 1.0))
}

/// The communes of one département, drawn by population.
#[derive(Debug)]
pub struct Territory {
    pub code: String,
    communes: Vec<&'static Commune>,
    by_population: Weighted,
}

impl Territory {
    pub fn new(code: &str) -> anyhow::Result<Self> {
        let communes: Vec<&'static Commune> =
            geo::communes().in_departement(code).into_iter().filter(|c| c.population > 0).collect();
        if communes.is_empty() {
            bail!("no populated commune in département {code:?}");
        }
        let by_population = Weighted::new(communes.iter().map(|c| f64::from(c.population)))
            .context("the département has no population")?;
        Ok(Self { code: code.to_string(), communes, by_population })
    }

    pub fn len(&self) -> usize {
        self.communes.len()
    }

    pub fn population(&self) -> u64 {
        self.communes.iter().map(|c| u64::from(c.population)).sum()
    }

    fn commune(&self, rng: &mut impl Rng) -> &'static Commune {
        self.communes[self.by_population.pick(rng)]
    }
}

/// One structure to create with `PUT /api/v1/structures/{id}`.
#[derive(Debug, Clone)]
pub struct StructurePlan {
    pub id: String,
    pub commune_code: String,
    pub services: Vec<String>,
    pub body: Value,
}

/// `count` structures whose capacities add up to `total_capacity`.
pub fn structures(
    rng: &mut impl Rng,
    territory: &Territory,
    run: &str,
    count: usize,
    total_capacity: u64,
) -> Vec<StructurePlan> {
    let service_weights: Vec<(&str, f64)> = SERVICES.iter().map(|(s, w, _)| (*s, *w)).collect();
    // Capacities: shares of the total with some spread, at least 1 each.
    let shares: Vec<f64> = (0..count).map(|_| rng.random_range(0.5..1.5)).collect();
    let share_total: f64 = shares.iter().sum();
    (0..count)
        .map(|n| {
            let commune = territory.commune(rng);
            let id = format!("load-{run}-{n}");
            let k = [1, 2, 2, 3, 3, 3, 4, 4][rng.random_range(0..8)];
            let services = pick_distinct(rng, &service_weights, k);
            let mut modes = Vec::new();
            if chance(rng, 0.85) {
                modes.push("individual");
            }
            if chance(rng, 0.3) || modes.is_empty() {
                modes.push("workshop");
            }
            if chance(rng, 0.15) {
                modes.push("remote");
            }
            if chance(rng, 0.1) {
                modes.push("autonomous");
            }
            let mut languages = vec!["fr"];
            for l in FOREIGN_LANGUAGES {
                if chance(rng, 0.12) {
                    languages.push(l);
                }
            }
            let accessibility: Vec<&str> = ACCESSIBILITY
                .iter()
                .filter(|(a, _)| chance(rng, if *a == "motor" { 0.5 } else { 0.12 }))
                .map(|(a, _)| *a)
                .collect();
            let capacity = ((total_capacity as f64) * shares[n] / share_total).round().clamp(1.0, 10_000.0) as u64;
            let postcode = commune.postcodes.first().cloned().unwrap_or_default();
            let body = json!({
                "name": format!("Lieu de test {n} ({})", commune.name),
                "services": services, "modes": modes, "languages": languages,
                "other_languages": chance(rng, 0.1), "accessibility": accessibility,
                "address": { "street": format!("{} rue de la Mairie", n % 90 + 1), "postcode": postcode,
                             "commune": commune.name, "commune_code": commune.code },
                "location": { "lat": commune.location.lat + rng.random_range(-0.01..0.01),
                              "lon": commune.location.lon + rng.random_range(-0.01..0.01) },
                "opening_hours": OPENING_HOURS[n % OPENING_HOURS.len()],
                "weekly_capacity": capacity, "accepting": true,
                "contact": { "phone": "+33545000000", "email": format!("lieu-{n}@example.org") }
            });
            StructurePlan {
                id,
                commune_code: commune.code.clone(),
                services: services.into_iter().map(str::to_string).collect(),
                body,
            }
        })
        .collect()
}

/// The body of one `POST /api/v1/referrals`.
pub fn referral(rng: &mut impl Rng, territory: &Territory, n: u64) -> Value {
    let need_weights: Vec<(&str, f64)> = SERVICES.iter().map(|(s, _, w)| (*s, *w)).collect();
    let commune = territory.commune(rng);
    let k = match rng.random_range(0..100) {
        0..65 => 1,
        65..95 => 2,
        _ => 3,
    };
    let needs = pick_distinct(rng, &need_weights, k);
    let mut languages = vec!["fr"];
    if chance(rng, 0.15) {
        languages.push(FOREIGN_LANGUAGES.choose(rng).copied().unwrap_or("en"));
    }
    let accessibility: Vec<&str> = if chance(rng, 0.06) { pick_distinct(rng, &ACCESSIBILITY, 1) } else { vec![] };
    let modes: Vec<&str> = match rng.random_range(0..100) {
        0..93 => vec!["in_person"],
        93..98 => vec!["remote"],
        _ => vec!["in_person", "remote"],
    };
    let urgency = if chance(rng, 0.1) { "urgent" } else { "normal" };
    let first_name = FIRST_NAMES.choose(rng).copied().unwrap_or("Camille");
    let has_email = chance(rng, 0.3);
    let mut body = json!({
        "person": {
            "first_name": first_name, "last_name": format!("Essai-{n}"),
            // `+3361…`: every such number is a valid French mobile number.
            "phone": format!("+3361{:07}", rng.random_range(0..10_000_000u32)),
            "email": if has_email { Value::from(format!("personne-{n}@example.org")) } else { Value::Null },
            "contact_preference": if has_email && chance(rng, 0.3) { "email" } else { "phone" },
            "commune_code": commune.code, "languages": languages, "accessibility": accessibility
        },
        "needs": needs, "modes": modes, "urgency": urgency,
        "consent": { "obtained": true, "method": "oral", "at": Utc::now().to_rfc3339() }
    });
    if chance(rng, 0.3) {
        let deadline = (Utc::now() + Duration::days(rng.random_range(7..60))).date_naive();
        body["deadline"] = Value::from(deadline.to_string());
    }
    if chance(rng, 0.2) {
        body["max_distance_km"] = Value::from([15.0, 20.0, 40.0][rng.random_range(0..3)]);
    }
    if chance(rng, 0.4) {
        body["note"] = Value::from("Dossier à déposer en ligne, la personne n'a pas d'ordinateur.");
    }
    body
}

/// The one person of a `--same-person` run: the same phone number and e-mail address on
/// every submission, as a client that retries without an Idempotency-Key (or a loop)
/// sends them. Everything else in the body stays as drawn.
pub fn same_person(body: &mut Value) {
    let person = &mut body["person"];
    person["first_name"] = Value::from("Camille");
    person["last_name"] = Value::from("Même-Personne");
    person["phone"] = Value::from("+33610000000");
    person["email"] = Value::from("meme-personne@example.org");
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn structures_are_placed_in_the_territory_with_the_capacity_asked_for() {
        let mut rng = StdRng::seed_from_u64(1);
        let t = Territory::new("16").unwrap();
        let plans = structures(&mut rng, &t, "r", 50, 1200);
        assert_eq!(plans.len(), 50);
        let total: u64 = plans.iter().map(|p| p.body["weekly_capacity"].as_u64().unwrap()).sum();
        assert!((1150..=1250).contains(&total), "{total}");
        assert!(plans.iter().all(|p| p.commune_code.starts_with("16")));
        assert!(plans.iter().all(|p| (1..=4).contains(&p.services.len())));
        // No account signs in for them: the matcher offers them only through a public address.
        assert!(plans.iter().all(|p| p.body["contact"]["email"].as_str().is_some_and(|e| e.contains('@'))));
    }

    #[test]
    fn the_same_person_keeps_the_rest_of_the_body() {
        let t = Territory::new("16").unwrap();
        let drawn = referral(&mut StdRng::seed_from_u64(3), &t, 7);
        let mut same = referral(&mut StdRng::seed_from_u64(3), &t, 7);
        same_person(&mut same);
        assert_eq!(
            (&same["person"]["phone"], &same["person"]["email"]),
            (&json!("+33610000000"), &json!("meme-personne@example.org"))
        );
        assert_eq!(same["person"]["commune_code"], drawn["person"]["commune_code"]);
        assert_eq!((&same["needs"], &same["consent"]["obtained"]), (&drawn["needs"], &drawn["consent"]["obtained"]));
    }

    #[test]
    fn people_live_mostly_where_people_live() {
        let mut rng = StdRng::seed_from_u64(2);
        let t = Territory::new("16").unwrap();
        let from_angouleme =
            (0..2000).filter(|n| referral(&mut rng, &t, *n)["person"]["commune_code"] == "16015").count();
        // Angoulême is about 12 % of the Charente.
        assert!((100..400).contains(&from_angouleme), "{from_angouleme}");
    }
}
