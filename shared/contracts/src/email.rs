//! E-mail addresses, checked with the `email_address` crate (RFC 5321/5322 syntax).

use email_address::{EmailAddress, Options};

/// One mailbox at a domain with a top-level part (`nom@exemple.fr`): no display name
/// (`Nom <nom@exemple.fr>`), which is not an address, and no IP literal (`nom@[10.0.0.1]`),
/// which no public service gives out.
fn options() -> Options {
    Options::default().with_required_tld().without_display_text().without_domain_literal()
}

/// Whether `address`, as given, is one e-mail address.
pub fn is_email_address(address: &str) -> bool {
    EmailAddress::parse_with_options(address, options()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted() {
        for address in [
            "mansle@france-services.gouv.fr",
            "amina.b+orientation@example.org",
            "contact@laquincaillerie.tl",
            "prénom.nom@exemple.fr",
            "a@b.fr",
        ] {
            assert!(is_email_address(address), "{address}");
        }
    }

    #[test]
    fn what_is_not_one_address_is_refused() {
        for address in [
            "",
            "pas de mail",
            "nom@",
            "@exemple.fr",
            "nom@exemple",
            "nom@@exemple.fr",
            "nom@exemple..fr",
            "nom@.exemple.fr",
            "nom@exemple.fr.",
            "nom prénom@exemple.fr",
            "Nom <nom@exemple.fr>",
            "nom@[10.0.0.1]",
            "a@b.fr,c@d.fr",
            " nom@exemple.fr",
        ] {
            assert!(!is_email_address(address), "{address}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_input_is_checked_without_panicking(s in "\\PC{0,80}") {
            let _ = is_email_address(&s);
        }
    }
}
