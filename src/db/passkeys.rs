//! `passkeys` (an account's WebAuthn credentials), `passkey_handles` (the
//! random user handle its authenticators store) and `passkey_ceremonies`
//! (a ceremony's state between its start and its finish).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use uuid::Uuid;

use crate::domain::{PasskeyId, UserId};
use crate::schema::{passkey_ceremonies, passkey_handles, passkeys};

/// The account's user handle, made at its first passkey.
pub fn handle(conn: &mut PgConnection, user_id: UserId) -> QueryResult<Uuid> {
    diesel::insert_into(passkey_handles::table)
        .values((
            passkey_handles::user_id.eq(user_id),
            passkey_handles::handle.eq(Uuid::new_v4()),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    passkey_handles::table
        .find(user_id)
        .select(passkey_handles::handle)
        .first(conn)
}

/// The account whose user handle this is.
pub fn owner_of_handle(conn: &mut PgConnection, handle: Uuid) -> QueryResult<Option<UserId>> {
    passkey_handles::table
        .filter(passkey_handles::handle.eq(handle))
        .select(passkey_handles::user_id)
        .first(conn)
        .optional()
}

/// A stored passkey. `credential` is webauthn-rs's `Passkey` as JSON: a
/// public key, nothing secret.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = passkeys, check_for_backend(diesel::pg::Pg))]
pub struct StoredPasskey {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub credential_id: Vec<u8>,
    pub name: String,
    pub credential: serde_json::Value,
    pub sign_count: i64,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = passkeys)]
pub struct NewPasskey<'a> {
    pub id: &'a PasskeyId,
    pub user_id: UserId,
    pub credential_id: &'a [u8],
    pub name: &'a str,
    pub credential: &'a serde_json::Value,
    pub sign_count: i64,
    pub created_at: DateTime<Utc>,
}

/// Stores a new passkey; false when its credential is registered already
/// (to this account or any other).
pub fn insert(conn: &mut PgConnection, passkey: &NewPasskey<'_>) -> QueryResult<bool> {
    match diesel::insert_into(passkeys::table)
        .values(passkey)
        .execute(conn)
    {
        Ok(_) => Ok(true),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The account's passkeys, oldest first.
pub fn of_user(conn: &mut PgConnection, user_id: UserId) -> QueryResult<Vec<StoredPasskey>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order((passkeys::created_at, passkeys::id))
        .select(StoredPasskey::as_select())
        .load(conn)
}

/// The passkey with this credential id, whoever owns it.
pub fn by_credential_id(
    conn: &mut PgConnection,
    credential_id: &[u8],
) -> QueryResult<Option<StoredPasskey>> {
    passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(StoredPasskey::as_select())
        .first(conn)
        .optional()
}

/// Renames the account's passkey; `None` when it has no such passkey.
pub fn rename(
    conn: &mut PgConnection,
    user_id: UserId,
    id: &PasskeyId,
    name: &str,
) -> QueryResult<Option<StoredPasskey>> {
    diesel::update(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user_id)),
    )
    .set(passkeys::name.eq(name))
    .returning(StoredPasskey::as_returning())
    .get_result(conn)
    .optional()
}

/// Removes the account's passkey; false when it has no such passkey.
pub fn delete(conn: &mut PgConnection, user_id: UserId, id: &PasskeyId) -> QueryResult<bool> {
    diesel::delete(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user_id)),
    )
    .execute(conn)
    .map(|rows| rows == 1)
}

/// Whether the account still has this passkey.
pub fn exists(conn: &mut PgConnection, user_id: UserId, id: &PasskeyId) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user_id)),
    ))
    .get_result(conn)
}

/// Removes every passkey of the account; how many there were.
pub fn delete_all_of(conn: &mut PgConnection, user_id: UserId) -> QueryResult<usize> {
    diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).execute(conn)
}

/// Records a use: the credential as the authenticator left it (counter,
/// backup state), if its counter is still the one the check saw. False
/// when another use moved it first: of two assertions with one counter,
/// one is a copy.
pub fn record_use(
    conn: &mut PgConnection,
    used: &StoredPasskey,
    credential: &serde_json::Value,
    sign_count: i64,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(
        passkeys::table
            .find(&used.id)
            .filter(passkeys::sign_count.eq(used.sign_count)),
    )
    .set((
        passkeys::credential.eq(credential),
        passkeys::sign_count.eq(sign_count),
        passkeys::last_used_at.eq(now),
    ))
    .execute(conn)
    .map(|rows| rows == 1)
}

/// What a ceremony is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Adding a passkey to a logged-in account.
    Register,
    /// A login with a passkey alone.
    Login,
    /// The second step of a password login.
    Mfa,
}

impl CeremonyPurpose {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::Mfa => "mfa",
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = passkey_ceremonies)]
pub struct NewCeremony<'a> {
    pub id_hash: &'a [u8],
    pub purpose: &'static str,
    pub user_id: Option<UserId>,
    pub session_id: Option<&'a str>,
    pub mfa_token_hash: Option<&'a [u8]>,
    pub state: &'a serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub fn insert_ceremony(conn: &mut PgConnection, ceremony: &NewCeremony<'_>) -> QueryResult<()> {
    diesel::insert_into(passkey_ceremonies::table)
        .values(ceremony)
        .execute(conn)
        .map(drop)
}

/// A ceremony taken out of the table to be finished.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = passkey_ceremonies, check_for_backend(diesel::pg::Pg))]
pub struct Ceremony {
    pub user_id: Option<UserId>,
    pub session_id: Option<String>,
    pub mfa_token_hash: Option<Vec<u8>>,
    pub state: serde_json::Value,
}

/// Takes the unexpired ceremony with this id digest, for `purpose`, out of
/// the table: whatever its finish says, it is not finished twice.
pub fn claim_ceremony(
    conn: &mut PgConnection,
    id_hash: &[u8; 32],
    purpose: CeremonyPurpose,
    now: DateTime<Utc>,
) -> QueryResult<Option<Ceremony>> {
    diesel::delete(
        passkey_ceremonies::table
            .find(id_hash.as_slice())
            .filter(passkey_ceremonies::purpose.eq(purpose.as_str()))
            .filter(passkey_ceremonies::expires_at.gt(now)),
    )
    .returning(Ceremony::as_returning())
    .get_result(conn)
    .optional()
}

/// Deletes up to `batch` ceremonies that expired before `until`; how many.
pub fn purge_expired_ceremonies(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    batch: i64,
) -> QueryResult<usize> {
    let expired: Vec<Vec<u8>> = passkey_ceremonies::table
        .filter(passkey_ceremonies::expires_at.lt(until))
        .select(passkey_ceremonies::id_hash)
        .limit(batch)
        .load(conn)?;
    diesel::delete(passkey_ceremonies::table.filter(passkey_ceremonies::id_hash.eq_any(&expired)))
        .execute(conn)
}
