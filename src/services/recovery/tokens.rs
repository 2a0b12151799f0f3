//! The tokens in mailed links: 256 random bits, stored as a SHA-256 digest
//! only, bound to one purpose and one address, usable once.

use diesel::{PgConnection, QueryResult};

use crate::crypto::{random_token, sha256};
use crate::db::email_tokens::{self, NewToken, Supersede};

/// Makes the token `new` describes, voiding the earlier ones it
/// supersedes. Only its digest is stored: the token itself exists in the
/// mail (or the printed link).
pub fn issue(
    conn: &mut PgConnection,
    new: &NewToken<'_>,
    supersede: Supersede,
) -> QueryResult<String> {
    let token = random_token();
    email_tokens::issue(conn, &sha256(token.as_bytes()), new, supersede)?;
    Ok(token)
}

/// The digest a presented token would be stored under, if it has the shape
/// of one of ours at all (43 base64url characters); anything else is known
/// to be nobody's without asking the database.
pub fn digest_of(presented: &str) -> Option<[u8; 32]> {
    let shaped = presented.len() == 43
        && presented
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shaped.then(|| sha256(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_token_shaped_input_gets_a_digest() {
        assert!(digest_of(&random_token()).is_some());
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            &"é".repeat(21),
        ] {
            assert!(digest_of(bad).is_none(), "{bad:?}");
        }
    }
}
