//! The second factor's tables: `totp_factors` (one sealed secret per
//! account, pending until confirmed), `recovery_codes` (digests, each used
//! once) and `mfa_challenges` (a password accepted, a second step owed).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ipnet::IpNet;

use crate::domain::UserId;
use crate::schema::{mfa_challenges, recovery_codes, totp_factors};

/// A row of `totp_factors`: the secret still sealed.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = totp_factors, check_for_backend(diesel::pg::Pg))]
pub struct TotpFactor {
    #[diesel(column_name = secret)]
    pub sealed: Vec<u8>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// The account's factor, confirmed or pending.
pub fn totp(conn: &mut PgConnection, user_id: UserId) -> QueryResult<Option<TotpFactor>> {
    totp_factors::table
        .find(user_id)
        .select((totp_factors::secret, totp_factors::confirmed_at))
        .first(conn)
        .optional()
}

/// Starts (or restarts) a pending enrolment with this sealed secret; false,
/// and nothing changed, when the account's factor is confirmed already.
pub fn start_totp(conn: &mut PgConnection, user_id: UserId, sealed: &[u8]) -> QueryResult<bool> {
    conn.transaction(|conn| {
        let confirmed: Option<Option<DateTime<Utc>>> = totp_factors::table
            .find(user_id)
            .select(totp_factors::confirmed_at)
            .for_update()
            .first(conn)
            .optional()?;
        if matches!(confirmed, Some(Some(_))) {
            return Ok(false);
        }
        diesel::insert_into(totp_factors::table)
            .values((
                totp_factors::user_id.eq(user_id),
                totp_factors::secret.eq(sealed),
            ))
            .on_conflict(totp_factors::user_id)
            .do_update()
            .set((
                totp_factors::secret.eq(sealed),
                totp_factors::last_step.eq(0),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

/// Seals the secret again (under the current key, after a rotation).
pub fn reseal_totp(conn: &mut PgConnection, user_id: UserId, sealed: &[u8]) -> QueryResult<()> {
    diesel::update(totp_factors::table.find(user_id))
        .set(totp_factors::secret.eq(sealed))
        .execute(conn)
        .map(drop)
}

/// Accepts the code of `step`, once: moves the last accepted step forward
/// if `step` is newer (a compare-and-set, so two instances cannot both
/// accept it), and confirms a pending factor when `confirm`. False when
/// the step was used already (or there is no such factor).
pub fn accept_step(
    conn: &mut PgConnection,
    user_id: UserId,
    step: i64,
    confirm: Option<DateTime<Utc>>,
) -> QueryResult<bool> {
    let target = totp_factors::table
        .find(user_id)
        .filter(totp_factors::last_step.lt(step));
    match confirm {
        Some(now) => diesel::update(target.filter(totp_factors::confirmed_at.is_null()))
            .set((
                totp_factors::last_step.eq(step),
                totp_factors::confirmed_at.eq(now),
            ))
            .execute(conn),
        None => diesel::update(target.filter(totp_factors::confirmed_at.is_not_null()))
            .set(totp_factors::last_step.eq(step))
            .execute(conn),
    }
    .map(|rows| rows == 1)
}

/// Removes the account's factor and its recovery codes; false when it had
/// none.
pub fn remove_all(conn: &mut PgConnection, user_id: UserId) -> QueryResult<bool> {
    let codes = diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    let factors = diesel::delete(totp_factors::table.find(user_id)).execute(conn)?;
    Ok(codes + factors > 0)
}

/// Replaces the account's recovery codes with these digests.
pub fn replace_recovery_codes(
    conn: &mut PgConnection,
    user_id: UserId,
    digests: &[[u8; 32]],
) -> QueryResult<()> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    let rows: Vec<_> = digests
        .iter()
        .map(|digest| {
            (
                recovery_codes::user_id.eq(user_id),
                recovery_codes::digest.eq(digest.as_slice()),
            )
        })
        .collect();
    diesel::insert_into(recovery_codes::table)
        .values(rows)
        .execute(conn)
        .map(drop)
}

/// Uses up the recovery code with this digest; false when the account has
/// no such unused code.
pub fn use_recovery_code(
    conn: &mut PgConnection,
    user_id: UserId,
    digest: &[u8; 32],
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(
        recovery_codes::table
            .find((user_id, digest.as_slice()))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now))
    .execute(conn)
    .map(|rows| rows == 1)
}

/// What a challenge is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// The second step of a login.
    Login,
    /// Setting up a factor before a login's first session
    /// (`MFA_REQUIRED`).
    Enroll,
}

impl ChallengePurpose {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Enroll => "enroll",
        }
    }
}

/// A challenge to store, by the digest of its token.
#[derive(Insertable)]
#[diesel(table_name = mfa_challenges)]
pub struct NewChallenge<'a> {
    pub token_hash: &'a [u8],
    pub user_id: UserId,
    pub purpose: &'a str,
    pub remember: bool,
    pub next: &'a str,
    pub ip: Option<IpNet>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub fn insert_challenge(conn: &mut PgConnection, challenge: &NewChallenge<'_>) -> QueryResult<()> {
    diesel::insert_into(mfa_challenges::table)
        .values(challenge)
        .execute(conn)
        .map(drop)
}

/// A challenge taken out of the table to be answered: what it carries,
/// and what [`restore_challenge`] needs to put it back.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = mfa_challenges, check_for_backend(diesel::pg::Pg))]
pub struct Challenge {
    pub user_id: UserId,
    pub purpose: String,
    pub remember: bool,
    pub next: String,
    pub ip: Option<IpNet>,
    pub failures: i32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The unexpired challenge with this token digest, made for `purpose` by
/// a client at `ip`, left where it is.
pub fn find_challenge(
    conn: &mut PgConnection,
    token_hash: &[u8; 32],
    purpose: ChallengePurpose,
    ip: Option<IpNet>,
    now: DateTime<Utc>,
) -> QueryResult<Option<Challenge>> {
    live_challenge(token_hash.as_slice(), purpose.as_str(), ip, now)
        .select(Challenge::as_select())
        .first(conn)
        .optional()
}

/// [`find_challenge`], taking it out of the table: one request at a time
/// answers a challenge, so two cannot both spend a code on it.
pub fn claim_challenge(
    conn: &mut PgConnection,
    token_hash: &[u8; 32],
    purpose: ChallengePurpose,
    ip: Option<IpNet>,
    now: DateTime<Utc>,
) -> QueryResult<Option<Challenge>> {
    diesel::delete(live_challenge(
        token_hash.as_slice(),
        purpose.as_str(),
        ip,
        now,
    ))
    .returning(Challenge::as_returning())
    .get_result(conn)
    .optional()
}

/// The challenge with this digest, if unexpired and made for `purpose` by
/// a client at `ip`.
#[diesel::dsl::auto_type(no_type_alias)]
fn live_challenge<'a>(
    token_hash: &'a [u8],
    purpose: &'static str,
    ip: Option<IpNet>,
    now: DateTime<Utc>,
) -> _ {
    mfa_challenges::table
        .find(token_hash)
        .filter(mfa_challenges::expires_at.gt(now))
        .filter(mfa_challenges::purpose.eq(purpose))
        .filter(mfa_challenges::ip.is_not_distinct_from(ip))
}

/// Puts a claimed challenge back, with its count of wrong codes; unless
/// that count reached `limit`, which voids it.
pub fn restore_challenge(
    conn: &mut PgConnection,
    token_hash: &[u8; 32],
    challenge: &Challenge,
    failures: i32,
    limit: i32,
) -> QueryResult<()> {
    if failures >= limit {
        return Ok(());
    }
    diesel::insert_into(mfa_challenges::table)
        .values((
            mfa_challenges::token_hash.eq(token_hash.as_slice()),
            mfa_challenges::user_id.eq(challenge.user_id),
            mfa_challenges::purpose.eq(&challenge.purpose),
            mfa_challenges::remember.eq(challenge.remember),
            mfa_challenges::next.eq(&challenge.next),
            mfa_challenges::ip.eq(challenge.ip),
            mfa_challenges::failures.eq(failures),
            mfa_challenges::created_at.eq(challenge.created_at),
            mfa_challenges::expires_at.eq(challenge.expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Voids every challenge of the account: a second step owed to a factor
/// that is gone.
pub fn void_challenges(conn: &mut PgConnection, user_id: UserId) -> QueryResult<()> {
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(user_id)))
        .execute(conn)
        .map(drop)
}

/// Deletes up to `batch` challenges that expired before `until`; how many.
pub fn purge_expired_challenges(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    batch: i64,
) -> QueryResult<usize> {
    let expired: Vec<Vec<u8>> = mfa_challenges::table
        .filter(mfa_challenges::expires_at.lt(until))
        .select(mfa_challenges::token_hash)
        .limit(batch)
        .load(conn)?;
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::token_hash.eq_any(&expired)))
        .execute(conn)
}
