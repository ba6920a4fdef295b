//! The Mednum vocabularies (v1.0 and the older v0.1 labels still found in real exports),
//! mapped to the API's. Labels compare without case, accents or punctuation, so
//! `S’équiper` and `S'equiper` are the same label.

use std::collections::HashMap;
use std::sync::OnceLock;

use contracts::{Accessibility, Language, Need, StructureMode};

use super::fields::Fit;

/// A label folded for comparison.
pub(in crate::domain) fn fold(label: &str) -> String {
    geo::normalize_name(label)
}

/// The part of a v0 label before ` : ` (`Gratuit : Je peux accéder…` → `Gratuit`).
fn short_form(label: &str) -> Option<&str> {
    label.split_once(':').map(|(head, _)| head.trim()).filter(|h| !h.is_empty())
}

/// A label in a table: exactly, or by its part before ` : ` (loosely: what follows the
/// colon may hold further values, as in `Payant : …, Adhésion : …`).
fn lookup<T: Clone>(t: &Table<T>, label: &str) -> Option<(T, Fit)> {
    if let Some(v) = t.get(&fold(label)) {
        return Some((v.clone(), Fit::Exact));
    }
    short_form(label).and_then(|s| t.get(&fold(s))).map(|v| (v.clone(), Fit::Loose))
}

/// Whether a folded label contains a folded phrase as whole words.
fn has(folded: &str, phrase: &str) -> bool {
    let padded = format!(" {folded} ");
    padded.contains(&format!(" {phrase} "))
}

/// Whether a folded label contains a word starting with `prefix`.
fn has_word_starting(folded: &str, prefix: &str) -> bool {
    folded.split(' ').any(|w| w.starts_with(prefix))
}

type Table<T> = HashMap<String, T>;

fn table<T: Copy>(entries: &[(&str, T)]) -> Table<T> {
    entries.iter().map(|(label, value)| (fold(label), *value)).collect()
}

// -- Services

const V0_SERVICES: &[(&str, Need)] = &[
    ("Devenir autonome dans les démarches administratives", Need::AideDemarchesAdministratives),
    ("Réaliser des démarches administratives avec un accompagnement", Need::AideDemarchesAdministratives),
    ("Accompagner les démarches de santé", Need::AideDemarchesAdministratives),
    ("Prendre en main un smartphone ou une tablette", Need::MaitriseOutilsNumeriques),
    ("Prendre en main un ordinateur", Need::MaitriseOutilsNumeriques),
    ("Utiliser le numérique au quotidien", Need::MaitriseOutilsNumeriques),
    ("Approfondir ma culture numérique", Need::ComprehensionMondeNumerique),
    ("Promouvoir la citoyenneté numérique", Need::ComprehensionMondeNumerique),
    ("Favoriser mon insertion professionnelle", Need::InsertionProfessionnelle),
    ("Créer et développer mon entreprise", Need::InsertionProfessionnelle),
    ("Accéder à une connexion internet", Need::AccesInternetMateriel),
    ("Accéder à du matériel", Need::AccesInternetMateriel),
    ("S’équiper en matériel informatique", Need::AcquisitionMaterielSolidaire),
    ("Créer avec le numérique", Need::LoisirsCreations),
    ("Soutenir la parentalité et l'éducation avec le numérique", Need::ParentaliteEducation),
];

fn services() -> &'static Table<Need> {
    static TABLE: OnceLock<Table<Need>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = table(V0_SERVICES);
        for need in Need::ALL {
            t.insert(fold(need.label_fr()), *need);
            t.insert(fold(need.slug()), *need);
        }
        t
    })
}

/// A `services` label: v1, v0, an API slug, a data·inclusion theme
/// (`numerique--prendre-en-main-un-ordinateur`), or a close variant of one.
pub(in crate::domain) fn service(label: &str) -> Option<(Need, Fit)> {
    let folded = fold(label);
    let t = services();
    if let Some(need) = t.get(&folded) {
        return Some((*need, Fit::Exact));
    }
    if let Some(rest) = folded.strip_prefix("numerique ")
        && let Some(need) = t.get(rest)
    {
        return Some((*need, Fit::Exact));
    }
    service_by_keywords(&folded).map(|need| (need, Fit::Loose))
}

/// Variants of the labels (typos, rewordings, other regional vocabularies), by their most
/// telling words; the more specific services are tried first.
fn service_by_keywords(f: &str) -> Option<Need> {
    use Need::*;
    let rules: &[(&[&str], Need)] = &[
        (
            &["prix solidaire", "s equiper", "acquisition", "acquerir", "reconditionne", "reconditionnes"],
            AcquisitionMaterielSolidaire,
        ),
        (&["parentalite"], ParentaliteEducation),
        (&["securite", "securisee", "securise", "cybersecurite", "arnaques"], UtilisationSecurisee),
        (
            &["insertion professionnelle", "emploi", "entreprise", "entrepreneur", "entrepreneurs", "cv"],
            InsertionProfessionnelle,
        ),
        (
            &["demarche", "demarches", "administratif", "administratives", "administrative"],
            AideDemarchesAdministratives,
        ),
        (
            &[
                "connexion",
                "acces internet",
                "acces a internet",
                "wifi",
                "acceder a du materiel",
                "materiel informatique",
                "acces au materiel",
                "libre acces",
            ],
            AccesInternetMateriel,
        ),
        (&["culture numerique", "comprehension", "citoyennete", "citoyen"], ComprehensionMondeNumerique),
        (
            &[
                "loisirs",
                "loisir",
                "creation",
                "creations",
                "creer",
                "creatif",
                "recreatif",
                "recreatifs",
                "recreative",
                "recreatives",
            ],
            LoisirsCreations,
        ),
        (
            &[
                "outils numeriques",
                "numerique au quotidien",
                "smartphone",
                "tablette",
                "ordinateur",
                "bureautique",
                "initiation",
                "prise en main",
            ],
            MaitriseOutilsNumeriques,
        ),
    ];
    rules.iter().find(|(phrases, _)| phrases.iter().any(|p| has(f, p))).map(|(_, need)| *need)
}

// -- Modes

const MODES: &[(&str, StructureMode)] = &[
    ("En autonomie", StructureMode::Autonomous),
    ("Accompagnement individuel", StructureMode::Individual),
    ("Dans un atelier collectif", StructureMode::Workshop),
    ("À distance", StructureMode::Remote),
    // v0, whole and by the part before ` : `.
    ("Seul : j'ai accès à du matériel et une connexion", StructureMode::Autonomous),
    ("Avec de l'aide : je suis accompagné seul dans l'usage du numérique", StructureMode::Individual),
    ("Dans un atelier : j'apprends collectivement à utiliser le numérique", StructureMode::Workshop),
    ("A ma place : une personne habilitée fait les démarches à ma place", StructureMode::Individual),
    ("Seul", StructureMode::Autonomous),
    ("Avec de l'aide", StructureMode::Individual),
    ("Dans un atelier", StructureMode::Workshop),
    ("A ma place", StructureMode::Individual),
];

fn modes() -> &'static Table<StructureMode> {
    static TABLE: OnceLock<Table<StructureMode>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = table(MODES);
        for mode in StructureMode::ALL {
            t.insert(fold(mode.slug()), *mode);
        }
        t
    })
}

/// A `modalites_accompagnement` label, v1 or v0.
pub(in crate::domain) fn mode(label: &str) -> Option<(StructureMode, Fit)> {
    if let Some(found) = lookup(modes(), label) {
        return Some(found);
    }
    let f = fold(label);
    let rules: &[(&[&str], StructureMode)] = &[
        (&["distance", "visio", "visioconference", "en ligne", "telephone"], StructureMode::Remote),
        (&["atelier", "ateliers", "collectif", "collective", "groupe"], StructureMode::Workshop),
        (&["autonomie", "autonome", "seul", "libre service", "libre acces"], StructureMode::Autonomous),
        (
            &["individuel", "individuelle", "individualise", "a ma place", "avec de l aide", "accompagnement"],
            StructureMode::Individual,
        ),
    ];
    rules.iter().find(|(phrases, _)| phrases.iter().any(|p| has(&f, p))).map(|(_, m)| (*m, Fit::Loose))
}

// -- Specific support and audiences

/// What a `prise_en_charge_specifique` or `publics_accueillis` label says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::domain) enum Public {
    Access(Accessibility),
    Language(Language),
    OtherLanguages,
    /// An audience (young people, seniors…): known, and not used for matching.
    Audience,
}

const PUBLICS: &[(&str, Public)] = &[
    ("Surdité", Public::Access(Accessibility::Deaf)),
    ("Déficience visuelle", Public::Access(Accessibility::Visual)),
    ("Handicaps moteurs", Public::Access(Accessibility::Motor)),
    ("Handicaps mentaux", Public::Access(Accessibility::Mental)),
    ("Handicaps psychiques", Public::Access(Accessibility::Mental)),
    (
        "Handicaps psychiques : troubles psychiatriques donnant lieu à des atteintes comportementales",
        Public::Access(Accessibility::Mental),
    ),
    ("Handicaps mentaux : déficiences limitant les activités d'une personne", Public::Access(Accessibility::Mental)),
    ("Illettrisme", Public::Access(Accessibility::Illiteracy)),
    ("Personnes en situation d'illettrisme", Public::Access(Accessibility::Illiteracy)),
    ("Langues étrangères (autres)", Public::OtherLanguages),
    ("Public langues étrangères", Public::OtherLanguages),
    ("Seniors (+ 65 ans)", Public::Audience),
    ("Seniors", Public::Audience),
    ("Familles/enfants", Public::Audience),
    ("Familles et/ou enfants", Public::Audience),
    ("Adultes", Public::Audience),
    ("Jeunes (16-26 ans)", Public::Audience),
    ("Jeunes", Public::Audience),
    ("Uniquement femmes", Public::Audience),
    ("Femmes", Public::Audience),
    ("Étudiants", Public::Audience),
    ("Tout public", Public::Audience),
    ("Tous publics", Public::Audience),
];

fn publics() -> &'static Table<Public> {
    static TABLE: OnceLock<Table<Public>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: Table<Public> = PUBLICS.iter().map(|(label, p)| (fold(label), p.clone())).collect();
        for a in Accessibility::ALL {
            t.insert(fold(a.slug()), Public::Access(*a));
            t.insert(fold(a.label_fr()), Public::Access(*a));
        }
        if let Ok(english) = "en".parse() {
            t.insert(fold("Langues étrangères (anglais)"), Public::Language(english));
        }
        t
    })
}

/// Foreign languages by their French names.
const LANGUAGES: &[(&str, &str)] = &[
    ("anglais", "en"),
    ("espagnol", "es"),
    ("allemand", "de"),
    ("italien", "it"),
    ("portugais", "pt"),
    ("arabe", "ar"),
    ("russe", "ru"),
    ("ukrainien", "uk"),
    ("chinois", "zh"),
    ("turc", "tr"),
    ("roumain", "ro"),
    ("polonais", "pl"),
    ("neerlandais", "nl"),
    ("persan", "fa"),
    ("dari", "fa"),
    ("pachto", "ps"),
    ("tamoul", "ta"),
    ("vietnamien", "vi"),
];

/// A `prise_en_charge_specifique` (v1) or `publics_accueillis` (v0) label.
pub(in crate::domain) fn public(label: &str) -> Option<(Public, Fit)> {
    if let Some(found) = lookup(publics(), label) {
        return Some(found);
    }
    public_by_keywords(label).map(|p| (p, Fit::Loose))
}

fn public_by_keywords(label: &str) -> Option<Public> {
    let f = fold(label);
    if has(&f, "signes")
        || has_word_starting(&f, "sourd")
        || has_word_starting(&f, "malentendant")
        || has_word_starting(&f, "surdit")
        || has_word_starting(&f, "auditi")
    {
        return Some(Public::Access(Accessibility::Deaf));
    }
    if has_word_starting(&f, "langue")
        || has_word_starting(&f, "etranger")
        || has_word_starting(&f, "allophone")
        || has(&f, "fle")
    {
        if let Some((_, code)) = LANGUAGES.iter().find(|(name, _)| has(&f, name))
            && let Ok(language) = code.parse::<Language>()
        {
            return Some(Public::Language(language));
        }
        return Some(Public::OtherLanguages);
    }
    let access: &[(&[&str], Accessibility)] = &[
        (
            &[
                "visuel",
                "visuelle",
                "visuels",
                "aveugle",
                "aveugles",
                "malvoyant",
                "malvoyants",
                "malvoyantes",
                "cecite",
            ],
            Accessibility::Visual,
        ),
        (&["moteur", "moteurs", "motrice", "motrices", "mobilite reduite", "fauteuil", "pmr"], Accessibility::Motor),
        (
            &["mental", "mentaux", "mentale", "psychique", "psychiques", "cognitif", "cognitifs", "intellectuel"],
            Accessibility::Mental,
        ),
        (
            &["illettrisme", "illettrees", "illettres", "analphabetisme", "analphabetes", "illectronisme"],
            Accessibility::Illiteracy,
        ),
    ];
    if let Some((_, a)) = access.iter().find(|(phrases, _)| phrases.iter().any(|p| has(&f, p))) {
        return Some(Public::Access(*a));
    }
    const AUDIENCE_WORDS: &[&str] = &[
        "jeune",
        "senior",
        "adulte",
        "famille",
        "enfant",
        "femme",
        "etudiant",
        "public",
        "publics",
        "personnes agees",
        "parent",
        "demandeur",
        "retraite",
        "salarie",
        "beneficiaire",
        "lyceen",
        "collegien",
        "habitant",
        "agriculteur",
        "entrepreneur",
        "association",
        "professionnel",
        "aidant",
        "migrant",
        "refugie",
    ];
    AUDIENCE_WORDS.iter().any(|w| has_word_starting(&f, w)).then_some(Public::Audience)
}

// -- Fees

const FEES: &[&str] = &["Gratuit", "Gratuit sous condition", "Payant", "Adhésion", "Accepte le Pass numérique"];

/// The v0.1 `conditions_acces` labels.
const V0_FEES: &[&str] = &[
    "Gratuit : Je peux accéder gratuitement au lieu et à ses services",
    "Gratuit sous condition : La gratuité est conditionnée à des critères (situation familiale, convention avec un organisme social...)",
    "Payant : L'accès au lieu et/ou à ses services est payant",
    "Adhésion : L'accès au lieu et/ou à ses services nécessite d'y adhérer",
    "Accepte le Pass numérique : Il est possible d'utiliser un Pass numérique pour accéder au lieu",
];

fn fees() -> &'static Table<&'static str> {
    static TABLE: OnceLock<Table<&'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: Table<&'static str> = FEES.iter().map(|f| (fold(f), *f)).collect();
        for long in V0_FEES {
            if let Some(known) = short_form(long).and_then(|s| FEES.iter().find(|f| fold(f) == fold(s))) {
                t.insert(fold(long), *known);
            }
        }
        t
    })
}

/// A fee label in the standard's short form (`Gratuit : Je peux accéder gratuitement…`
/// → `Gratuit`).
pub(in crate::domain) fn fee(label: &str) -> Option<(String, Fit)> {
    lookup(fees(), label).map(|(f, fit)| (f.to_string(), fit))
}

/// An unknown fee label, shortened like the v0 ones.
pub(in crate::domain) fn fee_as_written(label: &str) -> String {
    short_form(label).unwrap_or(label).to_string()
}

// -- National labels and programmes

const LABELS: &[&str] = &[
    // v1 dispositif_programmes_nationaux
    "Aidants Connect",
    "Bibliothèques numérique de référence",
    "Certification PIX",
    "Conseillers numériques",
    "Emmaüs Connect",
    "France Services",
    "Grande école du numérique",
    "La Croix Rouge",
    "Point d'accès numérique CAF",
    "Promeneurs du net",
    "Relais numérique (Emmaüs Connect)",
    // v1 formations_labels
    "Formé à « Mon Espace Santé »",
    "Formé à « DUPLEX » (illettrisme)",
    "Arnia/MedNum BFC (Bourgogne-Franche-Comté)",
    "Collectif ressources et acteurs réemploi (Normandie)",
    "Étapes numériques(La Poste)",
    "Fabriques de Territoire",
    "Les Éclaireurs du numérique (Drôme)",
    "Mes Papiers (Métropole de Lyon)",
    "ORDI 3.0",
    "SUD LABS (PACA)",
    // v0 labels_nationaux
    "CNFS",
    "APTIC",
    "Grandes écoles du numérique",
    "Point relais CAF",
    "Point numérique CAF",
    "Relais pôle emploi",
    "French Tech",
    "Campus connecté",
];

/// A label or programme, spelled as the standard spells it when it is one of its own.
pub(in crate::domain) fn label(value: &str) -> Option<String> {
    let folded = fold(value);
    LABELS.iter().find(|l| fold(l) == folded).map(|l| (*l).to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn service(label: &str) -> Option<Need> {
        super::service(label).map(|(n, _)| n)
    }

    fn mode(label: &str) -> Option<StructureMode> {
        super::mode(label).map(|(m, _)| m)
    }

    fn public(label: &str) -> Option<Public> {
        super::public(label).map(|(p, _)| p)
    }

    #[test]
    fn keyword_matches_are_loose_and_labels_exact() {
        assert_eq!(super::service("Prendre en main un ordinateur").map(|m| m.1), Some(Fit::Exact));
        assert_eq!(super::service("Ateliers ordinateur").map(|m| m.1), Some(Fit::Loose));
    }

    #[test]
    fn every_v1_service_label_maps_to_its_need() {
        for need in Need::ALL {
            assert_eq!(service(need.label_fr()), Some(*need));
            assert_eq!(service(need.slug()), Some(*need));
            assert_eq!(service(&need.label_fr().to_uppercase()), Some(*need));
        }
    }

    #[test]
    fn every_v0_service_label_maps_to_a_v1_service() {
        for (label, need) in V0_SERVICES {
            assert_eq!(service(label), Some(*need), "{label}");
        }
        assert_eq!(service("S'équiper en matériel informatique"), Some(Need::AcquisitionMaterielSolidaire));
        assert_eq!(service("Creer et developper mon entreprise"), Some(Need::InsertionProfessionnelle));
        assert_eq!(service("numerique--prendre-en-main-un-ordinateur"), Some(Need::MaitriseOutilsNumeriques));
    }

    #[test]
    fn close_variants_of_service_labels_map_by_their_telling_words() {
        assert_eq!(service("Accès à internet et au matériel"), Some(Need::AccesInternetMateriel));
        assert_eq!(service("Aide aux démarches en ligne"), Some(Need::AideDemarchesAdministratives));
        assert_eq!(service("Sécurité numérique"), Some(Need::UtilisationSecurisee));
        assert_eq!(service("Cuisine"), None);
        assert_eq!(service(""), None);
    }

    #[test]
    fn modes_map_from_v1_and_v0_labels() {
        assert_eq!(mode("En autonomie"), Some(StructureMode::Autonomous));
        assert_eq!(mode("Accompagnement individuel"), Some(StructureMode::Individual));
        assert_eq!(mode("Dans un atelier collectif"), Some(StructureMode::Workshop));
        assert_eq!(mode("À distance"), Some(StructureMode::Remote));
        assert_eq!(mode("a distance"), Some(StructureMode::Remote));
        assert_eq!(mode("Seul : j'ai accès à du matériel et une connexion"), Some(StructureMode::Autonomous));
        assert_eq!(
            mode("Avec de l’aide : je suis accompagné seul dans l'usage du numérique"),
            Some(StructureMode::Individual)
        );
        assert_eq!(
            mode("Dans un atelier : j'apprends collectivement à utiliser le numérique"),
            Some(StructureMode::Workshop)
        );
        assert_eq!(
            mode("A ma place : une personne habilitée fait les démarches à ma place"),
            Some(StructureMode::Individual)
        );
        assert_eq!(mode("Sur la lune"), None);
    }

    #[test]
    fn publics_map_to_accessibility_languages_or_known_audiences() {
        assert_eq!(public("Surdité"), Some(Public::Access(Accessibility::Deaf)));
        assert_eq!(public("Déficience visuelle"), Some(Public::Access(Accessibility::Visual)));
        assert_eq!(public("Handicaps moteurs"), Some(Public::Access(Accessibility::Motor)));
        assert_eq!(
            public("Handicaps mentaux : déficiences limitant les activités d'une personne"),
            Some(Public::Access(Accessibility::Mental))
        );
        assert_eq!(
            public("Handicaps psychiques : troubles psychiatriques donnant lieu à des atteintes comportementales"),
            Some(Public::Access(Accessibility::Mental))
        );
        assert_eq!(public("Personnes en situation d’illettrisme"), Some(Public::Access(Accessibility::Illiteracy)));
        assert_eq!(public("Langues étrangères (anglais)"), Some(Public::Language("en".parse().unwrap())));
        assert_eq!(public("Langues étrangères (autres)"), Some(Public::OtherLanguages));
        assert_eq!(public("Public langues étrangères"), Some(Public::OtherLanguages));
        for audience in [
            "Jeunes (16-26 ans)",
            "Seniors (+ 65 ans)",
            "Familles/enfants",
            "Adultes",
            "Uniquement femmes",
            "Étudiants",
        ] {
            assert_eq!(public(audience), Some(Public::Audience), "{audience}");
        }
        assert_eq!(public("Martiens"), None);
    }

    #[test]
    fn v0_fee_labels_are_shortened_to_the_part_before_the_colon() {
        let fee = |l: &str| super::fee(l).map(|(f, _)| f);
        assert_eq!(fee("Gratuit : Je peux accéder gratuitement au lieu et à ses services").as_deref(), Some("Gratuit"));
        assert_eq!(
            super::fee(
                "Gratuit sous condition : La gratuité est conditionnée à des critères (situation familiale, convention avec un organisme social...)"
            ),
            Some(("Gratuit sous condition".to_string(), Fit::Exact))
        );
        assert_eq!(super::fee("Payant : autrement dit"), Some(("Payant".to_string(), Fit::Loose)));
        assert_eq!(fee("adhesion").as_deref(), Some("Adhésion"));
        assert_eq!(fee("Sur devis"), None);
        assert_eq!(fee_as_written("Sur devis : 10 €"), "Sur devis");
    }

    #[test]
    fn known_labels_are_spelled_as_the_standard_does() {
        assert_eq!(label("france services").as_deref(), Some("France Services"));
        assert_eq!(label("Label maison"), None);
    }
}
