//! Reading single fields the way real files write them: multi-values, phone numbers,
//! e-mail addresses, web sites, dates, coordinates and ids.

use chrono::NaiveDate;
use contracts::email::is_email_address;
use contracts::events::StructureContact;
use contracts::phone::PhoneNumber;

use super::read::RawValue;

/// One item of a multi-valued field, as written (trimmed), and what it maps to.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::domain) struct Item<T> {
    pub label: String,
    pub mapped: Option<T>,
}

/// How well a label maps: as one of the vocabulary's labels, or by its telling words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::domain) enum Fit {
    Exact,
    Loose,
}

/// Splits a multi-valued field and maps each part. Values are separated by `|`, `;` or line
/// breaks (a JSON array is already split). A part that is not exactly a label is split on
/// ` / `, `, ` or `,` when that maps more of it: labels such as *Gratuit : Je peux accéder
/// gratuitement au lieu et à ses services* contain commas themselves, and separators inside
/// parentheses never split (*(situation familiale, convention avec un organisme social...)*).
pub(in crate::domain) fn split_map<T>(value: &RawValue, map: impl Fn(&str) -> Option<(T, Fit)>) -> Vec<Item<T>> {
    let chunks: Vec<&str> = match value {
        RawValue::Text(s) => s.split(['|', ';', '\n', '\r']).collect(),
        RawValue::List(items) => items.iter().map(String::as_str).collect(),
    };
    let mut items = Vec::new();
    for chunk in chunks {
        let chunk = clean(chunk);
        if chunk.is_empty() {
            continue;
        }
        let whole = match map(&chunk) {
            Some((mapped, Fit::Exact)) => {
                items.push(Item { label: chunk, mapped: Some(mapped) });
                continue;
            }
            other => other.map(|(mapped, _)| mapped),
        };
        match best_split(&chunk, whole.is_some(), &map) {
            Some(parts) => items.extend(parts),
            None => items.push(Item { label: chunk, mapped: whole }),
        }
    }
    items
}

/// Separators tried inside a value that is not one label: regional exports join their
/// labels with ` / ` (Gironde 2021) or with commas, with or without a space.
const INNER_SEPARATORS: [&str; 3] = [" / ", ", ", ","];

/// The split of a value that maps the most parts, when it maps more than the whole value's
/// one loose match; or as many, when some part maps nothing and the value is no `Label :
/// explanation` (whose commas belong to the explanation): a loose match of the whole would
/// silently drop that part (*Accès internet, ateliers numériques*), the split reports it.
fn best_split<T>(chunk: &str, whole_mapped: bool, map: &impl Fn(&str) -> Option<(T, Fit)>) -> Option<Vec<Item<T>>> {
    let whole = usize::from(whole_mapped);
    let mut best: Option<(usize, Vec<Item<T>>)> = None;
    for separator in INNER_SEPARATORS {
        let parts: Vec<Item<T>> = split_outside_parentheses(chunk, separator)
            .into_iter()
            .map(clean)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mapped = map(&p).map(|(m, _)| m);
                Item { label: p, mapped }
            })
            .collect();
        let mapped = parts.iter().filter(|p| p.mapped.is_some()).count();
        let reports_a_lost_part = whole_mapped && mapped == whole && parts.len() > mapped && !chunk.contains(':');
        if parts.len() > 1 && (mapped > whole || reports_a_lost_part) && best.as_ref().is_none_or(|(b, _)| mapped > *b)
        {
            best = Some((mapped, parts));
        }
    }
    best.map(|(_, parts)| parts)
}

/// `s` split on `separator`, except inside parentheses.
fn split_outside_parentheses<'s>(s: &'s str, separator: &str) -> Vec<&'s str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut i = 0;
    while let Some(rest) = s.get(i..) {
        let Some(c) = rest.chars().next() else { break };
        if depth == 0 && rest.starts_with(separator) {
            parts.push(s.get(start..i).unwrap_or_default());
            i += separator.len();
            start = i;
            continue;
        }
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += c.len_utf8();
    }
    parts.push(s.get(start..).unwrap_or_default());
    parts
}

/// Every match is exact: for free-text vocabularies with no loose matching.
pub(in crate::domain) fn exact<T>(mapped: Option<T>) -> Option<(T, Fit)> {
    mapped.map(|m| (m, Fit::Exact))
}

/// Trimmed, with inner runs of white space folded and stray quotes or bullets removed.
fn clean(s: &str) -> String {
    let s = s.trim_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '•' | '\u{a0}'));
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first number of a list in E.164 when it is a valid one (`05 45 20 72 08`,
/// `0033 5 45…`, `+33 (0)5 45…`, `545207208` from a spreadsheet that dropped the `0`,
/// `0590 12 34 56` in Guadeloupe); otherwise as written, since a short number (`3631`) or
/// a note still helps a person get in touch.
pub(in crate::domain) fn phone(raw: &str) -> Option<String> {
    let first = raw.split(['|', ';', '/', ',', '\n']).map(str::trim).find(|s| !s.is_empty())?;
    Some(PhoneNumber::parse(first).map_or_else(|_| first.to_string(), PhoneNumber::into_string))
}

/// The first e-mail address of a list, or `Err` with what was given when none looks like one.
pub(in crate::domain) fn email(raw: &str) -> Result<String, String> {
    raw.split(['|', ';', ',', ' ', '\n'])
        .map(|s| s.trim().trim_start_matches("mailto:").trim_matches(['<', '>', '"']))
        .find(|s| is_email_address(s))
        .map(str::to_string)
        .ok_or_else(|| raw.trim().to_string())
}

/// The first web site of a list; `www.example.fr` gets `https://`.
pub(in crate::domain) fn website(raw: &str) -> Option<String> {
    let first = raw.split(['|', ';', ' ', '\n', ',']).map(str::trim).find(|s| !s.is_empty())?;
    if first.to_ascii_lowercase().starts_with("www.") {
        Some(format!("https://{first}"))
    } else {
        Some(first.to_string())
    }
}

/// A place's public contact, from its phone, e-mail and web site fields as given. An
/// e-mail field that holds no address is ignored with a warning on `email_field`.
pub(in crate::domain) fn contact(
    phone: Option<String>,
    email: Option<String>,
    website: Option<String>,
    email_field: &str,
    warnings: &mut Vec<(String, String)>,
) -> StructureContact {
    let email = email.and_then(|given| match self::email(&given) {
        Ok(email) => Some(email),
        Err(given) => {
            warnings.push((email_field.to_string(), format!("'{given}' is not an e-mail address; ignored")));
            None
        }
    });
    StructureContact {
        phone: phone.and_then(|p| self::phone(&p)),
        email,
        website: website.and_then(|w| self::website(&w)),
    }
}

/// `2023-04-01`, `2023-04-01T10:00:00Z` or `01/04/2023`.
pub(in crate::domain) fn date(raw: &str) -> Option<NaiveDate> {
    let raw = raw.trim();
    let day = raw.get(..10).unwrap_or(raw);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(day, "%d/%m/%Y"))
        .or_else(|_| NaiveDate::parse_from_str(day, "%d-%m-%Y"))
        .ok()
}

/// A coordinate as a number, or text with a decimal comma (`45,6512`) or a degree sign.
pub(in crate::domain) fn coordinate(raw: &str) -> Option<f64> {
    let cleaned: String = raw
        .trim()
        .trim_end_matches('°')
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    cleaned.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Ids become URL path segments: the characters allowed in a structure id are kept,
/// accented letters lose their accents and anything else becomes `-`.
pub(in crate::domain) fn safe_id(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@') {
            out.push(c);
        } else if c.is_alphanumeric() {
            let folded = geo::normalize_name(&c.to_string());
            if folded.chars().all(|f| f.is_ascii_alphanumeric()) && !folded.is_empty() {
                out.push_str(&folded);
            } else {
                out.push('-');
            }
        } else {
            out.push('-');
        }
    }
    out.chars().take(200).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn labels(value: &str, known: &[&str]) -> Vec<(String, bool)> {
        split_map(&RawValue::Text(value.to_string()), |s| exact(known.contains(&s).then_some(())))
            .into_iter()
            .map(|i| (i.label, i.mapped.is_some()))
            .collect()
    }

    #[test]
    fn values_are_split_on_pipes_and_semicolons_and_trimmed() {
        assert_eq!(
            labels(" A | B;C ;; ", &["A", "B", "C"]),
            vec![("A".into(), true), ("B".into(), true), ("C".into(), true)]
        );
    }

    #[test]
    fn commas_split_only_when_the_parts_map_better() {
        assert_eq!(labels("A, B", &["A", "B"]), vec![("A".into(), true), ("B".into(), true)]);
        assert_eq!(labels("A, with comma", &["A, with comma"]), vec![("A, with comma".into(), true)]);
        assert_eq!(labels("X, Y", &["A"]), vec![("X, Y".into(), false)]);
        assert_eq!(labels("A, Y", &["A"]), vec![("A".into(), true), ("Y".into(), false)]);
        assert_eq!(labels("A,B", &["A", "B"]), vec![("A".into(), true), ("B".into(), true)]);
        assert_eq!(
            labels("A, B,C", &["A", "B", "C"]),
            vec![("A".into(), true), ("B".into(), true), ("C".into(), true)]
        );
        assert_eq!(labels("A (x, y)", &["A (x, y)"]), vec![("A (x, y)".into(), true)]);
    }

    #[test]
    fn a_loose_match_of_the_whole_value_gives_way_to_its_comma_separated_parts() {
        let map = |s: &str| match s {
            "A" | "B" => Some((s.to_string(), Fit::Exact)),
            s if s.contains('A') => Some(("A".to_string(), Fit::Loose)),
            _ => None,
        };
        let items: Vec<_> = split_map(&RawValue::Text("A, B".into()), map).into_iter().map(|i| i.mapped).collect();
        assert_eq!(items, vec![Some("A".to_string()), Some("B".to_string())]);
        let items: Vec<_> = split_map(&RawValue::Text("xAx".into()), map).into_iter().map(|i| i.mapped).collect();
        assert_eq!(items, vec![Some("A".to_string())]);
    }

    #[test]
    fn arrays_are_already_split() {
        let items =
            split_map(&RawValue::List(vec!["A".into(), " ".into(), "B".into()]), |s| exact(Some(s.to_string())));
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn french_phone_numbers_become_e164() {
        assert_eq!(phone("05 45 20 72 08").as_deref(), Some("+33545207208"));
        assert_eq!(phone("05.45.20.72.08").as_deref(), Some("+33545207208"));
        assert_eq!(phone("+33 (0)5 45 20 72 08").as_deref(), Some("+33545207208"));
        assert_eq!(phone("0033545207208").as_deref(), Some("+33545207208"));
        assert_eq!(phone("545207208").as_deref(), Some("+33545207208"));
        assert_eq!(phone("+33545207208").as_deref(), Some("+33545207208"));
        assert_eq!(phone("05 45 20 72 08 / 06 12 34 56 78").as_deref(), Some("+33545207208"));
        assert_eq!(phone("0590 12 34 56").as_deref(), Some("+590590123456"));
        assert_eq!(phone("0262 12 34 56").as_deref(), Some("+262262123456"));
        assert_eq!(phone("0692 12 34 56").as_deref(), Some("+262692123456"));
    }

    #[test]
    fn phone_numbers_that_are_not_valid_numbers_are_kept_as_written() {
        assert_eq!(phone("3631").as_deref(), Some("3631"));
        assert_eq!(phone("05 45 20 72").as_deref(), Some("05 45 20 72"));
        assert_eq!(phone("+44 20 7946 0958").as_deref(), Some("+442079460958"));
        assert_eq!(phone("voir site").as_deref(), Some("voir site"));
        assert_eq!(phone("  "), None);
    }

    #[test]
    fn the_first_email_address_is_taken() {
        assert_eq!(email("a@b.fr|c@d.fr").unwrap(), "a@b.fr");
        assert_eq!(email(" mailto:a@b.fr ").unwrap(), "a@b.fr");
        assert!(email("pas de mail").is_err());
    }

    #[test]
    fn the_first_website_is_taken() {
        assert_eq!(website("https://a.fr/,https://b.fr/").as_deref(), Some("https://a.fr/"));
        assert_eq!(website("www.a.fr").as_deref(), Some("https://www.a.fr"));
    }

    #[test]
    fn dates_are_read_in_iso_and_french_order() {
        let d = NaiveDate::from_ymd_opt(2023, 4, 1).unwrap();
        assert_eq!(date("2023-04-01"), Some(d));
        assert_eq!(date("01/04/2023"), Some(d));
        assert_eq!(date("2023-04-01T08:00:00+02:00"), Some(d));
        assert_eq!(date("avril 2023"), None);
        assert_eq!(date("é"), None);
    }

    #[test]
    fn coordinates_accept_decimal_commas() {
        assert_eq!(coordinate("45,6512"), Some(45.6512));
        assert_eq!(coordinate(" -0.33 "), Some(-0.33));
        assert_eq!(coordinate("45.1°"), Some(45.1));
        assert_eq!(coordinate("NaN"), None);
        assert_eq!(coordinate("abc"), None);
    }

    #[test]
    fn ids_are_made_safe_for_urls() {
        assert_eq!(safe_id("mediation-numerique-123"), "mediation-numerique-123");
        assert_eq!(safe_id("Lieu n°12 (Hôtel)"), "Lieu-n-12--Hotel-");
        assert!(crate::domain::structure::valid_structure_id(&safe_id("Lieu n°12 (Hôtel) / é")));
        assert_eq!(safe_id(&"x".repeat(300)).len(), 200);
    }
}
