/// Normalises a French place name for comparison: lower case, no accents, and
/// hyphens, apostrophes and repeated spaces folded into single spaces; `st`/`ste` become
/// `saint`/`sainte`. `"CHÂTEAUBERNARD"` and `"Châteaubernard"` compare equal, as do
/// `"St-Yrieix-sur-Charente"` and `"Saint Yrieix sur Charente"`.
pub fn normalize_name(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    for ch in name.chars().flat_map(char::to_lowercase) {
        match ch {
            'à' | 'â' | 'ä' | 'á' | 'ã' => folded.push('a'),
            'é' | 'è' | 'ê' | 'ë' => folded.push('e'),
            'î' | 'ï' | 'í' | 'ì' => folded.push('i'),
            'ô' | 'ö' | 'ó' | 'ò' | 'õ' => folded.push('o'),
            'ù' | 'û' | 'ü' | 'ú' => folded.push('u'),
            'ÿ' => folded.push('y'),
            'ç' => folded.push('c'),
            'ñ' => folded.push('n'),
            'œ' => folded.push_str("oe"),
            'æ' => folded.push_str("ae"),
            c if c.is_alphanumeric() => folded.push(c),
            _ => folded.push(' '),
        }
    }
    folded
        .split_whitespace()
        .map(|w| match w {
            "st" => "saint",
            "ste" => "sainte",
            w => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::normalize_name;

    #[test]
    fn folds_case_accents_and_punctuation() {
        assert_eq!(normalize_name("CHÂTEAUBERNARD"), normalize_name("Châteaubernard"));
        assert_eq!(normalize_name("St-Yrieix-sur-Charente"), "saint yrieix sur charente");
        assert_eq!(normalize_name("L'Isle-d'Espagnac"), "l isle d espagnac");
        assert_eq!(normalize_name("  Cœur  "), "coeur");
    }
}
