//! The GSM 03.38 default alphabet (3GPP TS 23.038) that an SMS is written in, how long a
//! text is in it, how many SMS it takes, and the transliteration that brings French text
//! into it.
//!
//! An SMS carries 160 septets. Each character of the default alphabet takes one; the ten
//! of its extension table (`^ { } \ [ ~ ] | €` and the form feed) take two (an escape and
//! the character). A text with any other character is sent in UCS-2 instead: 70
//! characters per SMS. A longer text is split into parts of 153 septets (67 UTF-16 units
//! in UCS-2), the rest of each part carrying the header that joins them; an escape and its
//! character are never split across parts. So `œ`, or a typographic apostrophe, turns a
//! 150-character message into three SMS: [`transliterate`] first.
//!
//! The alphabet has `é è ù à ì ò É Ç Ä Ö Ñ Ü ä ö ñ ü ß Å å Æ æ Ø ø`; it does not have
//! `ç`: position 0x09 is the capital `Ç` in the standard's Unicode mapping (GSM0338.TXT),
//! so `ç` becomes `c`.

/// Septets in one SMS.
pub const SINGLE_SMS_SEPTETS: usize = 160;
/// Septets in each part of a concatenated SMS (7 go to the header that joins them).
pub const PART_SEPTETS: usize = 153;
/// UTF-16 units in one SMS written in UCS-2.
pub const SINGLE_SMS_UCS2: usize = 70;
/// UTF-16 units in each part of a concatenated UCS-2 SMS.
pub const PART_UCS2: usize = 67;

/// The septets `c` takes in GSM 03.38: 1 in the default alphabet, 2 in the extension
/// table, `None` when it has no place there (the escape 0x1B itself is not text).
pub fn char_septets(c: char) -> Option<usize> {
    match c {
        '@' | '£' | '$' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | '\n' | 'Ø' | 'ø' | '\r' | 'Å' | 'å' => {
            Some(1)
        }
        'Δ' | '_' | 'Φ' | 'Γ' | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' => {
            Some(1)
        }
        ' ' | '!' | '"' | '#' | '¤' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.' | '/' => Some(1),
        '0'..='9' | ':' | ';' | '<' | '=' | '>' | '?' => Some(1),
        '¡' | 'A'..='Z' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' => Some(1),
        '¿' | 'a'..='z' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => Some(1),
        '\u{c}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        _ => None,
    }
}

/// Every character of `text` is in GSM 03.38 (the default alphabet or its extension).
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| char_septets(c).is_some())
}

/// The length of `text` in septets, or `None` when it is not GSM-7.
pub fn septets(text: &str) -> Option<usize> {
    text.chars().map(char_septets).sum()
}

/// How a text is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

pub fn encoding(text: &str) -> Encoding {
    if is_gsm7(text) { Encoding::Gsm7 } else { Encoding::Ucs2 }
}

/// How many SMS `text` takes, as a handset or a provider splits it: one up to 160
/// septets (70 UTF-16 units in UCS-2), else parts of at most 153 (67), never splitting an
/// escape and its character (or a surrogate pair). An empty text is one SMS.
pub fn segments(text: &str) -> usize {
    let (units, single, part): (Vec<usize>, _, _) = if is_gsm7(text) {
        (text.chars().filter_map(char_septets).collect(), SINGLE_SMS_SEPTETS, PART_SEPTETS)
    } else {
        (text.chars().map(char::len_utf16).collect(), SINGLE_SMS_UCS2, PART_UCS2)
    };
    if units.iter().sum::<usize>() <= single {
        return 1;
    }
    let (mut count, mut used) = (1, 0);
    for u in units {
        if used + u > part {
            count += 1;
            used = 0;
        }
        used += u;
    }
    count
}

/// `text` fits one SMS written in GSM-7: what an SMS of Aiguillage must do.
pub fn fits_one_sms(text: &str) -> bool {
    septets(text).is_some_and(|n| n <= SINGLE_SMS_SEPTETS)
}

/// The characters written with more than one character by [`transliterate`]; every other
/// character becomes at most one.
pub const EXPANSIONS: [(char, &str); 14] = [
    ('œ', "oe"),
    ('Œ', "OE"),
    ('…', "..."),
    ('þ', "th"),
    ('Þ', "TH"),
    ('ĳ', "ij"),
    ('Ĳ', "IJ"),
    ('ŉ', "'n"),
    ('ﬀ', "ff"),
    ('ﬁ', "fi"),
    ('ﬂ', "fl"),
    ('ﬃ', "ffi"),
    ('ﬄ', "ffl"),
    ('ﬆ', "st"),
];

/// `text` in GSM 03.38, for an SMS. What is in the alphabet stays (`é`, `è`, `à`, `ù`,
/// `É`, `Ç`, `ü` …); other letters lose their accent (`ê` → `e`, `ç` → `c`, `È` → `E`,
/// `Ô` → `O`); `œ` → `oe` and the other [`EXPANSIONS`]; typographic apostrophes and
/// quotes → `'` and `"` (`«` and `»` too); dashes → `-`; non-breaking, thin and other
/// spaces, and tabs → a space; `…` → `...`. Anything else is dropped (zero-width
/// characters, the soft hyphen, controls, emoji, other scripts). Never panics; the result
/// is always GSM-7, and transliterating it again changes nothing.
pub fn transliterate(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if char_septets(c).is_some() {
            out.push(c);
        } else if let Some((_, s)) = EXPANSIONS.iter().find(|(e, _)| *e == c) {
            out.push_str(s);
        } else if let Some(r) = fallback(c) {
            out.push(r);
        }
    }
    out
}

/// One character for a character outside the alphabet, or `None` to drop it.
fn fallback(c: char) -> Option<char> {
    Some(match c {
        // Latin-1 letters outside the alphabet.
        'À' | 'Á' | 'Â' | 'Ã' => 'A',
        'È' | 'Ê' | 'Ë' => 'E',
        'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
        'Ð' => 'D',
        'Ò' | 'Ó' | 'Ô' | 'Õ' => 'O',
        'Ù' | 'Ú' | 'Û' => 'U',
        'Ý' => 'Y',
        'á' | 'â' | 'ã' => 'a',
        'ç' => 'c',
        'ê' | 'ë' => 'e',
        'í' | 'î' | 'ï' => 'i',
        'ð' => 'd',
        'ó' | 'ô' | 'õ' => 'o',
        'ú' | 'û' => 'u',
        'ý' | 'ÿ' => 'y',
        'Ÿ' => 'Y',
        // Latin Extended-A: names of other European languages.
        'Ā' | 'Ă' | 'Ą' => 'A',
        'ā' | 'ă' | 'ą' => 'a',
        'Ć' | 'Ĉ' | 'Ċ' | 'Č' => 'C',
        'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
        'Ď' | 'Đ' => 'D',
        'ď' | 'đ' => 'd',
        'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => 'E',
        'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => 'e',
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => 'G',
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
        'Ĥ' | 'Ħ' => 'H',
        'ĥ' | 'ħ' => 'h',
        'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => 'I',
        'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => 'i',
        'Ĵ' => 'J',
        'ĵ' => 'j',
        'Ķ' => 'K',
        'ķ' | 'ĸ' => 'k',
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => 'L',
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => 'l',
        'Ń' | 'Ņ' | 'Ň' | 'Ŋ' => 'N',
        'ń' | 'ņ' | 'ň' | 'ŋ' => 'n',
        'Ō' | 'Ŏ' | 'Ő' => 'O',
        'ō' | 'ŏ' | 'ő' => 'o',
        'Ŕ' | 'Ŗ' | 'Ř' => 'R',
        'ŕ' | 'ŗ' | 'ř' => 'r',
        'Ś' | 'Ŝ' | 'Ş' | 'Š' => 'S',
        'ś' | 'ŝ' | 'ş' | 'š' | 'ſ' => 's',
        'Ţ' | 'Ť' | 'Ŧ' => 'T',
        'ţ' | 'ť' | 'ŧ' => 't',
        'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => 'U',
        'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => 'u',
        'Ŵ' => 'W',
        'ŵ' => 'w',
        'Ŷ' => 'Y',
        'ŷ' => 'y',
        'Ź' | 'Ż' | 'Ž' => 'Z',
        'ź' | 'ż' | 'ž' => 'z',
        // Romanian commas below.
        'Ș' => 'S',
        'ș' => 's',
        'Ț' => 'T',
        'ț' => 't',
        // Apostrophes, quotes, dashes, spaces.
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{2039}' | '\u{203A}' | '`' | '´'
        | '\u{02BC}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '«' | '»' => '"',
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}' | '\u{2212}' => '-',
        '\t' | '\u{a0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => ' ',
        // Other signs with a close equivalent.
        '•' | '‣' | '⁃' => '-',
        '·' => '.',
        '°' | 'º' => 'o',
        'ª' => 'a',
        '¹' => '1',
        '²' => '2',
        '³' => '3',
        'ᵉ' => 'e',
        'ʳ' => 'r',
        '×' => 'x',
        '÷' => '/',
        '¦' => '|',
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The default alphabet in code order, 0x00 to 0x7F (0x1B is the escape), and the
    /// extension table's characters: the reference the implementation is checked against.
    const TABLE: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
        ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "\u{c}^{}\\[~]|€";

    fn reference_septets(text: &str) -> Option<usize> {
        text.chars()
            .map(|c| {
                if c != '\u{1b}' && TABLE.contains(c) {
                    Some(1)
                } else if EXTENSION.contains(c) {
                    Some(2)
                } else {
                    None
                }
            })
            .sum()
    }

    /// Segments by the textbook formula, for texts without two-septet characters.
    fn reference_segments(len: usize, single: usize, part: usize) -> usize {
        if len <= single { 1 } else { len.div_ceil(part) }
    }

    #[test]
    fn the_table_has_128_positions_and_the_implementation_agrees_with_it() {
        assert_eq!(TABLE.chars().count(), 128);
        assert_eq!(TABLE.chars().nth(0x09), Some('Ç'));
        assert_eq!(TABLE.chars().nth(0x40), Some('¡'));
        assert_eq!(TABLE.chars().nth(0x7F), Some('à'));
        for c in TABLE.chars().filter(|c| *c != '\u{1b}') {
            assert_eq!(char_septets(c), Some(1), "{c:?}");
        }
        for c in EXTENSION.chars() {
            assert_eq!(char_septets(c), Some(2), "{c:?}");
        }
        // Every other character of the first pages has no place in it.
        for c in ('\0'..='\u{2FFF}').filter(|c| !TABLE.contains(*c) && !EXTENSION.contains(*c)) {
            assert_eq!(char_septets(c), None, "{c:?}");
        }
        assert_eq!(char_septets('\u{1b}'), None, "the escape is not text");
    }

    #[test]
    fn french_letters_in_and_out_of_the_alphabet() {
        for c in "éèùàìòÉÇÄÖÑÜäöñüßÅåÆæØø".chars() {
            assert_eq!(char_septets(c), Some(1), "{c}");
        }
        for c in "çêâîôûëïÿœŒÈÊÀÂÎÔÛ’«»–…".chars() {
            assert_eq!(char_septets(c), None, "{c}");
        }
    }

    #[test]
    fn septets_count_the_extension_twice() {
        assert_eq!(septets(""), Some(0));
        assert_eq!(septets("RDV à 9 h 30"), Some(12));
        assert_eq!(septets("5 €"), Some(4));
        assert_eq!(septets("[a]{b}~^|\\"), Some(18));
        assert_eq!(septets("cœur"), None);
        assert!(is_gsm7("Médiathèque d'Angoulême".replace('ê', "e").as_str()));
        assert!(!is_gsm7("Médiathèque d’Angoulême"));
    }

    #[test]
    fn segments_at_the_limits() {
        let a = |n| "a".repeat(n);
        assert_eq!(segments(""), 1);
        assert_eq!(segments(&a(160)), 1);
        assert_eq!(segments(&a(161)), 2);
        assert_eq!(segments(&a(306)), 2);
        assert_eq!(segments(&a(307)), 3);
        assert_eq!(segments(&"€".repeat(80)), 1);
        assert_eq!(segments(&"€".repeat(81)), 2);
        // 152 septets then a euro: the escape does not split, so the part ends at 152.
        assert_eq!(segments(&format!("{}€{}", a(152), a(152))), 3);
        assert_eq!(segments(&format!("{}€{}", a(151), a(152))), 2);
        // One character outside the alphabet: UCS-2.
        assert_eq!(segments(&format!("œ{}", a(69))), 1);
        assert_eq!(segments(&format!("œ{}", a(70))), 2);
        assert_eq!(segments(&format!("œ{}", a(133))), 2);
        assert_eq!(segments(&format!("œ{}", a(134))), 3);
        // An emoji is a surrogate pair: two units, never split.
        assert_eq!(segments(&"😀".repeat(35)), 1);
        assert_eq!(segments(&format!("{}😀", a(69))), 2);
        // 134 units would be two parts of 67, but the pair cannot straddle them.
        assert_eq!(segments(&format!("{}😀{}", a(66), a(66))), 3);
        assert!(fits_one_sms(&a(160)));
        assert!(!fits_one_sms(&a(161)));
        assert!(!fits_one_sms("ç"));
        assert_eq!(encoding("ç"), Encoding::Ucs2);
        assert_eq!(encoding("Ç"), Encoding::Gsm7);
    }

    #[test]
    fn french_text_is_transliterated_as_documented() {
        for (given, expected) in [
            ("Médiathèque, où à là", "Médiathèque, où à là"),
            ("Ça, façade, reçu", "Ça, facade, recu"),
            ("fête île hôtel août", "fete ile hotel aout"),
            ("Noël maïs Haÿ-les-Roses", "Noel mais Hay-les-Roses"),
            ("ÉCOLE ÈRE ÊTRE À Â Î Ô Û", "ÉCOLE ERE ETRE A A I O U"),
            ("Cœur, ŒUVRE", "Coeur, OEUVRE"),
            ("l’atelier « numérique » “ici”", "l'atelier \" numérique \" \"ici\""),
            ("9h–12h — fermé", "9h-12h - fermé"),
            ("9\u{a0}h\u{202f}30", "9 h 30"),
            ("Attendez…", "Attendez..."),
            ("ÄÖÜäöüßÅåÆæØøÑñ", "ÄÖÜäöüßÅåÆæØøÑñ"),
            ("Łódź Dvořák Ştefan", "Lodz Dvorak Stefan"),
            ("n° 3, 1ᵉʳ étage", "no 3, 1er étage"),
            ("zéro\u{200b}largeur\u{ad}", "zérolargeur"),
            ("😀 مرحبا 你好", "  "),
            ("5 € [a]", "5 € [a]"),
        ] {
            let out = transliterate(given);
            assert_eq!(out, expected, "{given}");
            assert!(is_gsm7(&out), "{given}");
        }
    }

    #[test]
    fn expansions_are_the_only_characters_that_grow() {
        for c in '\0'..='\u{FFFF}' {
            let out = transliterate(&c.to_string());
            assert!(is_gsm7(&out), "{c:?} -> {out:?}");
            let n = out.chars().count();
            if let Some((_, e)) = EXPANSIONS.iter().find(|(e, _)| *e == c) {
                assert_eq!(out, *e);
            } else {
                assert!(n <= 1, "{c:?} -> {out:?}");
            }
        }
    }

    fn expansion_extra(text: &str) -> usize {
        text.chars().filter_map(|c| EXPANSIONS.iter().find(|(e, _)| *e == c)).map(|(_, s)| s.chars().count() - 1).sum()
    }

    proptest! {
        #[test]
        fn transliteration_always_gives_gsm7_and_is_stable(s in "\\PC{0,200}") {
            let out = transliterate(&s);
            prop_assert!(is_gsm7(&out));
            prop_assert_eq!(transliterate(&out), out.clone());
        }

        #[test]
        fn transliteration_of_french_like_text_never_lengthens_but_for_expansions(
            s in "[a-zA-Z0-9 éèêëàâäîïôöùûüçœæÉÈÊÀÂÎÔÛÇŒÆ’‘“”«»–—…\u{a0}\u{202f}',.:;!?€()/-]{0,200}"
        ) {
            let out = transliterate(&s);
            prop_assert!(is_gsm7(&out));
            prop_assert!(out.chars().count() <= s.chars().count() + expansion_extra(&s));
        }

        #[test]
        fn transliteration_of_any_text_never_lengthens_but_for_expansions(s in "\\PC{0,200}") {
            let out = transliterate(&s);
            prop_assert!(out.chars().count() <= s.chars().count() + expansion_extra(&s));
        }

        #[test]
        fn gsm7_text_is_left_as_it_is(s in "[@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,./0-9:;<=>?¡A-ZÄÖÑÜ§¿a-zäöñüà^{}\\\\\\[~\\]|€\n-]{0,200}") {
            prop_assert_eq!(transliterate(&s), s.clone());
        }

        #[test]
        fn septets_match_the_reference(s in "\\PC{0,200}") {
            prop_assert_eq!(septets(&s), reference_septets(&s));
            prop_assert_eq!(is_gsm7(&s), reference_septets(&s).is_some());
            let t = transliterate(&s);
            prop_assert_eq!(septets(&t), reference_septets(&t));
        }

        #[test]
        fn segments_match_the_formula_without_escapes(n in 0usize..1000, ucs2 in any::<bool>()) {
            let text = if ucs2 { format!("œ{}", "a".repeat(n)) } else { "a".repeat(n) };
            let expected = if ucs2 {
                reference_segments(n + 1, SINGLE_SMS_UCS2, PART_UCS2)
            } else {
                reference_segments(n, SINGLE_SMS_SEPTETS, PART_SEPTETS)
            };
            prop_assert_eq!(segments(&text), expected);
        }

        #[test]
        fn segments_hold_every_septet_and_never_more_than_the_formula_plus_splits(s in "[a€]{0,600}") {
            let n = septets(&s).unwrap();
            let k = segments(&s);
            if n <= SINGLE_SMS_SEPTETS {
                prop_assert_eq!(k, 1);
            } else {
                prop_assert!(k * PART_SEPTETS >= n);
                // An unsplit escape wastes at most one septet per part.
                prop_assert!(k <= n.div_ceil(PART_SEPTETS - 1));
            }
        }
    }
}
