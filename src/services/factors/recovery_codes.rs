//! Recovery codes: single-use stand-ins for the authenticator, for the day
//! it is lost. Each holds 120 random bits, so a plain SHA-256 is a safe way
//! to store it (ASVS 6.5.2 asks for 112).

use rand::Rng;

use crate::crypto::sha256;

/// How many a set has.
pub const COUNT: usize = 10;
/// Crockford's base32, lower case: no i, l, o or u to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const SYMBOLS: usize = 24;
const GROUP: usize = 4;

/// A fresh set: the codes to show once, and the digests to store.
pub fn new_set() -> (Vec<String>, Vec<[u8; 32]>) {
    let codes = generate();
    let digests = codes
        .iter()
        .filter_map(|code| normalise(code))
        .map(|code| digest(&code))
        .collect();
    (codes, digests)
}

/// The codes of a fresh set, in groups (`7k2m-…`).
fn generate() -> Vec<String> {
    let mut rng = rand::rng();
    (0..COUNT)
        .map(|_| {
            let symbols: Vec<char> = (0..SYMBOLS)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect();
            symbols
                .chunks(GROUP)
                .map(|group| group.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// A typed recovery code in its one stored form: separators and spaces
/// dropped, any case; `None` when it cannot be one.
pub fn normalise(typed: &str) -> Option<String> {
    let symbols: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (symbols.len() == SYMBOLS && symbols.bytes().all(|b| ALPHABET.contains(&b))).then_some(symbols)
}

/// What is stored of a code.
pub fn digest(normalised: &str) -> [u8; 32] {
    sha256(normalised.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_codes_that_normalise() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), SYMBOLS + SYMBOLS / GROUP - 1);
            assert!(normalise(code).is_some(), "{code}");
        }
    }

    #[test]
    fn separators_and_case_do_not_matter() {
        let code = &generate()[0];
        let plain = normalise(code).unwrap();
        assert_eq!(
            normalise(&code.to_uppercase()).as_deref(),
            Some(plain.as_str())
        );
        assert_eq!(normalise(&plain).as_deref(), Some(plain.as_str()));
        assert_eq!(
            normalise(&code.replace('-', " ")).as_deref(),
            Some(plain.as_str())
        );
        assert_eq!(normalise("123456"), None);
        assert_eq!(normalise(&plain.replacen(|_| true, "u", 1)), None);
    }
}
