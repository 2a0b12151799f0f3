//! The `email_tokens` table: the tokens mailed in verification and reset
//! links, stored only as SHA-256 digests, each usable once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::domain::UserId;
use crate::schema::email_tokens;

/// What a mailed token may be used for (and, by the same name, the kind
/// of the mail that carries it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Proves that the account's owner reads its address.
    Verify,
    /// Sets a new password without the old one.
    Reset,
}

impl Purpose {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }
}

/// A row of `email_tokens`.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = email_tokens, check_for_backend(diesel::pg::Pg))]
pub struct EmailToken {
    pub user_id: UserId,
    /// The address the token was mailed to.
    pub email: String,
}

/// A token to store (by its digest): whose, for what, mailed where, asked
/// for from which client network, and when it was made and expires.
pub struct NewToken<'a> {
    pub user_id: UserId,
    pub purpose: Purpose,
    pub email: &'a str,
    pub requested_by: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Which of the user's earlier tokens of the same purpose a new one voids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Supersede {
    /// None: each works until it expires or is used.
    Nothing,
    /// Those asked for from the same client network (or, for one asked for
    /// by no client, those asked for by no client).
    SameRequester,
    /// All of them: the newest is the only one that works.
    All,
}

/// Stores a token by its digest, after deleting the earlier ones it
/// supersedes.
pub fn issue(
    conn: &mut PgConnection,
    digest: &[u8],
    new: &NewToken<'_>,
    supersede: Supersede,
) -> QueryResult<()> {
    let earlier = email_tokens::table
        .filter(email_tokens::user_id.eq(new.user_id))
        .filter(email_tokens::purpose.eq(new.purpose.as_str()));
    match supersede {
        Supersede::Nothing => 0,
        Supersede::SameRequester => diesel::delete(
            earlier.filter(email_tokens::requested_by.is_not_distinct_from(new.requested_by)),
        )
        .execute(conn)?,
        Supersede::All => diesel::delete(earlier).execute(conn)?,
    };
    diesel::insert_into(email_tokens::table)
        .values((
            email_tokens::token_hash.eq(digest),
            email_tokens::user_id.eq(new.user_id),
            email_tokens::purpose.eq(new.purpose.as_str()),
            email_tokens::email.eq(new.email),
            email_tokens::requested_by.eq(new.requested_by),
            email_tokens::created_at.eq(new.created_at),
            email_tokens::expires_at.eq(new.expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// The token with this digest and purpose, if it has not expired.
pub fn find_live(
    conn: &mut PgConnection,
    digest: &[u8],
    purpose: Purpose,
    now: DateTime<Utc>,
) -> QueryResult<Option<EmailToken>> {
    email_tokens::table
        .filter(email_tokens::token_hash.eq(digest))
        .filter(email_tokens::purpose.eq(purpose.as_str()))
        .filter(email_tokens::expires_at.gt(now))
        .select(EmailToken::as_select())
        .first(conn)
        .optional()
}

/// Uses the token up: deletes it and returns it, if it was live. Of two
/// requests racing with one token, the row lock lets one have it.
pub fn consume(
    conn: &mut PgConnection,
    digest: &[u8],
    purpose: Purpose,
    now: DateTime<Utc>,
) -> QueryResult<Option<EmailToken>> {
    diesel::delete(
        email_tokens::table
            .filter(email_tokens::token_hash.eq(digest))
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::expires_at.gt(now)),
    )
    .returning(EmailToken::as_returning())
    .get_result(conn)
    .optional()
}

/// Voids every token of `purpose` the user has (reset links, when the
/// password changes; confirmation links, once the address is confirmed).
pub fn void_of(conn: &mut PgConnection, user_id: UserId, purpose: Purpose) -> QueryResult<usize> {
    diesel::delete(
        email_tokens::table
            .filter(email_tokens::user_id.eq(user_id))
            .filter(email_tokens::purpose.eq(purpose.as_str())),
    )
    .execute(conn)
}

/// Deletes up to `batch` tokens that expired before `until`.
pub fn purge_expired(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    batch: i64,
) -> QueryResult<usize> {
    let expired: Vec<Vec<u8>> = email_tokens::table
        .filter(email_tokens::expires_at.lt(until))
        .select(email_tokens::token_hash)
        .limit(batch)
        .load(conn)?;
    diesel::delete(email_tokens::table.filter(email_tokens::token_hash.eq_any(&expired)))
        .execute(conn)
}
