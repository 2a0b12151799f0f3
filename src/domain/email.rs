//! Email addresses, normalised so that one mailbox is one account: the
//! domain in its ASCII (IDNA) form, the local part in Unicode NFKC and
//! lower case, and nothing invisible anywhere.

use idna::AsciiDenyList;
use unicode_normalization::UnicodeNormalization;
use validator::ValidateEmail;

pub const MAX_LEN: usize = 254;

pub const INVALID: &str = "Invalid email address.";
pub const INVISIBLE: &str =
    "Email address must not contain invisible, control or text-direction characters.";

/// A syntactically valid address in its normal form, at most 254
/// characters (the SMTP path limit). Addresses that differ only in case,
/// fullwidth forms, the spelling of the domain (Unicode or punycode,
/// `。` for `.`) are the same `Email`; addresses with characters nobody
/// can see are not emails at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        // Only the spaces a form or a paste leaves around an address; any
        // other blank or control character, even at the ends, is refused.
        let trimmed = value.trim_matches(' ');
        if trimmed.chars().any(is_invisible) {
            return Err(INVISIBLE);
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or(INVALID)?;
        let local = fold(local).ok_or(INVALID)?;
        // UTS 46: maps case, fullwidth forms and ideographic full stops,
        // and spells internationalised labels in punycode.
        let domain = idna::domain_to_ascii_cow(domain.as_bytes(), AsciiDenyList::STD3)
            .map_err(|_| INVALID)?;
        // What a mail server refuses is no address: a dot at either end of
        // the local part or two in a row (RFC 5321's dot-string), or a domain
        // that is a single label (no public host is).
        if !local.starts_with('"')
            && (local.starts_with('.') || local.ends_with('.') || local.contains(".."))
        {
            return Err(INVALID);
        }
        if !domain.contains('.') && !domain.starts_with('[') {
            return Err(INVALID);
        }
        // An RFC 2047 encoded word is not an address: a mail library that
        // decodes it (lettre does, when it parses a mailbox) would send to
        // another mailbox than the one stored.
        if local.contains("=?") || local.contains("?=") {
            return Err(INVALID);
        }
        let normalised = format!("{local}@{domain}");
        if normalised.chars().any(is_invisible) {
            return Err(INVISIBLE);
        }
        if normalised.chars().count() > MAX_LEN {
            Err("Email address must be at most 254 characters long.")
        } else if !normalised.validate_email() {
            Err(INVALID)
        } else {
            Ok(Self(normalised))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// NFKC and lower case, until neither changes anything (lower-casing can
/// undo NFKC, and NFKC can make capitals).
fn fold(local: &str) -> Option<String> {
    let mut current = local.to_owned();
    for _ in 0..4 {
        let next: String = current.to_lowercase().nfkc().collect();
        if next == current {
            return Some(current);
        }
        current = next;
    }
    None
}

/// Characters that change nothing a reader sees, or the order they see it
/// in: controls, whitespace inside the address, Unicode's default-ignorable
/// code points (soft hyphen, zero-width spaces and joiners, variation
/// selectors, tags) and the bidirectional controls.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::{Email, is_invisible};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_never_panics_and_normalises(value in any::<String>()) {
            if let Ok(email) = Email::parse(&value) {
                prop_assert!(email.as_str().chars().count() <= 254);
                prop_assert_eq!(email.as_str(), email.as_str().trim().to_lowercase());
                prop_assert!(email.as_str().contains('@'));
            }
        }

        /// Normalising a normal form changes nothing, and no normal form
        /// holds a character nobody can see.
        #[test]
        fn normalising_is_idempotent_and_visible(
            value in "[a-zA-Z0-9.\u{00AD}\u{200B}\u{FF21}-\u{FF3A}\u{3002}ü_+-]{1,20}@[a-zA-Z0-9ü\u{3002}\u{FF0E}\u{FF41}-\u{FF5A}.-]{1,20}",
        ) {
            if let Ok(email) = Email::parse(&value) {
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
                prop_assert!(!email.as_str().chars().any(is_invisible));
            }
        }

        #[test]
        fn unicode_local_parts_fold_to_a_fixed_point(local in "\\PC{1,12}") {
            if let Ok(email) = Email::parse(&format!("{local}@example.com")) {
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
            }
        }

        #[test]
        fn arbitrary_input_never_yields_invisible_characters(value in any::<String>()) {
            if let Ok(email) = Email::parse(&value) {
                prop_assert!(!email.as_str().chars().any(is_invisible));
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
            }
        }
    }

    #[test]
    fn normalises_case_and_surrounding_space() {
        assert_eq!(
            Email::parse("  Susan@Example.COM ").unwrap().as_str(),
            "susan@example.com"
        );
    }

    #[test]
    fn look_alikes_are_one_address_or_refused() {
        let dup = Email::parse("dup@example.com").unwrap();
        for same in [
            "DUP@EXAMPLE.COM",
            "\u{FF44}\u{FF55}\u{FF50}@example.com",
            "\u{FF24}\u{FF35}\u{FF30}@example.com",
            "dup@\u{FF45}\u{FF58}\u{FF41}\u{FF4D}\u{FF50}\u{FF4C}\u{FF45}.com",
            "dup@example\u{3002}com",
            "dup@example\u{FF0E}com",
        ] {
            assert_eq!(Email::parse(same).as_ref(), Ok(&dup), "{same:?}");
        }
        for hidden in [
            "dup@ex\u{00AD}ample.com",
            "d\u{200B}up@example.com",
            "dup\u{200D}@example.com",
            "dup@example.com\u{202E}",
            "\u{2066}dup@example.com",
            "dup@exa\u{FEFF}mple.com",
            "du\u{0007}p@example.com",
            "du\u{00A0}p@example.com",
        ] {
            assert_eq!(Email::parse(hidden), Err(super::INVISIBLE), "{hidden:?}");
        }
        assert_eq!(
            Email::parse("dup@bücher.example").unwrap(),
            Email::parse("dup@xn--bcher-kva.example").unwrap()
        );
        assert_eq!(
            Email::parse("Dup@BÜCHER.example").unwrap().as_str(),
            "dup@xn--bcher-kva.example"
        );
    }

    #[test]
    fn rejects_invalid_and_overlong_addresses() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "susan",
            "susan@",
            "@example.com",
            "a b@example.com",
            "susan@exa_mple.com",
            "susan@xn--.example",
            ".susan@example.com",
            "susan.@example.com",
            "su..san@example.com",
            "susan@localhost",
            "a@b",
            "=?utf-8?q?=61lice?=@example.com",
            "=?iso-8859-1?q?caf=E9?=@example.com",
            "a=?b@example.com",
            "a?=b@example.com",
            long.as_str(),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        for good in [
            "s.u.san@example.com",
            "susan+tag@mail.example.co.uk",
            "a=b?c@example.com",
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?}");
        }
    }
}
