//! The `users` table: accounts, and the queries that find and change them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

use crate::db::{email_tokens, mail_outbox};
use crate::domain::{Email, LoginName, PasswordHash, UserId, Username, is_invisible};
use crate::schema::users;

diesel::define_sql_function! {
    /// Postgres `lower(text)`: matches the `users_username_lower_key` index.
    fn lower(value: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// A row of `users`. Serialises to the public user object: never the hash.
#[derive(Clone, Debug, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub email: String,
    #[serde(skip)]
    pub password_hash: PasswordHash,
    #[serde(skip)]
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// When the owner proved they read `email`; cleared when it changes.
    #[serde(rename = "email_verified", serialize_with = "is_set")]
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Whether a second factor is on, and how many recovery codes are left
    /// (kept by triggers from `totp_factors` and `recovery_codes`).
    #[serde(skip)]
    pub totp_enabled: bool,
    #[serde(skip)]
    pub recovery_codes_left: i32,
    /// How many passkeys the account has (kept by a trigger from `passkeys`).
    #[serde(skip)]
    pub passkey_count: i32,
}

impl User {
    /// Whether a password alone is not enough: a TOTP authenticator, or a
    /// passkey, must answer a login's second step.
    pub fn has_second_factor(&self) -> bool {
        self.totp_enabled || self.passkey_count > 0
    }
}

/// Clients see whether the address is verified, not when.
fn is_set<S: serde::Serializer>(
    value: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_bool(value.is_some())
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a PasswordHash,
}

/// Which of the unique values are already in use.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    pub username: bool,
    pub email: bool,
}

/// Which of the given values another account uses (any but `except`).
/// Case-insensitive: `Susan` is taken once `susan` exists.
pub fn taken(
    conn: &mut PgConnection,
    username: Option<&Username>,
    email: Option<&Email>,
    except: Option<UserId>,
) -> QueryResult<Taken> {
    let username = username.map(|name| name.as_str().to_lowercase());
    let email = email.map(Email::as_str);
    let mut query = users::table
        .filter(
            lower(users::username)
                .nullable()
                .eq(username.as_deref())
                .or(users::email.nullable().eq(email)),
        )
        .select((users::username, users::email))
        .into_boxed();
    if let Some(id) = except {
        query = query.filter(users::id.ne(id));
    }
    let matches: Vec<(String, String)> = query.load(conn)?;
    Ok(Taken {
        username: matches
            .iter()
            .any(|(name, _)| Some(name.to_lowercase()) == username),
        email: matches
            .iter()
            .any(|(_, address)| Some(address.as_str()) == email),
    })
}

/// A unique index's refusal, as which value was taken: the indexes decide
/// races that [`taken`] cannot see.
fn refused_as_taken<T>(result: QueryResult<T>) -> QueryResult<Result<T, Taken>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
            match info.constraint_name() {
                Some("users_username_lower_key") => Ok(Err(Taken {
                    username: true,
                    email: false,
                })),
                Some("users_email_key") => Ok(Err(Taken {
                    username: false,
                    email: true,
                })),
                _ => Err(DieselError::DatabaseError(
                    DatabaseErrorKind::UniqueViolation,
                    info,
                )),
            }
        }
        Err(error) => Err(error),
    }
}

/// Inserts a user, or says which unique value was taken meanwhile.
pub fn insert(conn: &mut PgConnection, new: &NewUser<'_>) -> QueryResult<Result<User, Taken>> {
    refused_as_taken(
        diesel::insert_into(users::table)
            .values(new)
            .returning(User::as_returning())
            .get_result(conn),
    )
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = users)]
pub struct ProfileChange<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
}

/// Changes the username and/or address, or says which was taken meanwhile.
pub fn update_profile(
    conn: &mut PgConnection,
    id: UserId,
    change: &ProfileChange<'_>,
) -> QueryResult<Result<User, Taken>> {
    refused_as_taken(
        diesel::update(users::table.find(id))
            .set(change)
            .returning(User::as_returning())
            .get_result(conn),
    )
}

pub fn find(conn: &mut PgConnection, id: UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The account with this username, in any case.
pub fn find_by_username(conn: &mut PgConnection, username: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(lower(users::username).eq(username.to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Every account, oldest first.
pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<User>> {
    users::table
        .order(users::id)
        .select(User::as_select())
        .load(conn)
}

/// Sets a new password. Every reset link mailed before stops working, and
/// no password reset still queued for the account's address goes out: both
/// were asked for before this password existed. (Not a trigger: one
/// cannot tell this from [`replace_hash`], which must void nothing.) A
/// confirmation link still confirms the address it was mailed to.
pub fn set_password_hash(
    conn: &mut PgConnection,
    id: UserId,
    hash: &PasswordHash,
) -> QueryResult<()> {
    let email: String = diesel::update(users::table.find(id))
        .set(users::password_hash.eq(hash))
        .returning(users::email)
        .get_result(conn)?;
    email_tokens::void_of(conn, id, email_tokens::Purpose::Reset)?;
    mail_outbox::drop_resets_for(conn, &email)?;
    Ok(())
}

/// Marks `email` verified, if it is still the account's address; true when
/// that changed anything.
pub fn mark_email_verified(
    conn: &mut PgConnection,
    id: UserId,
    email: &str,
    at: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::email.eq(email))
            .filter(users::email_verified_at.is_null()),
    )
    .set(users::email_verified_at.eq(at))
    .execute(conn)
    .map(|rows| rows > 0)
}

/// The account, its row locked until the caller's transaction ends: a
/// change of address or password waits for it, and it sees the last one.
pub fn find_locked(conn: &mut PgConnection, id: UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// The account with this address (in its normal form), its row locked as
/// [`find_locked`] does.
pub fn find_by_email_locked(conn: &mut PgConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Enables or disables the account; true when that changed anything. A
/// trigger revokes every session of an account being disabled.
pub fn set_active(conn: &mut PgConnection, id: UserId, active: bool) -> QueryResult<bool> {
    diesel::update(users::table.find(id).filter(users::is_active.ne(active)))
        .set(users::is_active.eq(active))
        .execute(conn)
        .map(|rows| rows > 0)
}

/// Deletes the account; its sessions go with it (`ON DELETE CASCADE`).
pub fn delete(conn: &mut PgConnection, id: UserId) -> QueryResult<bool> {
    diesel::delete(users::table.find(id))
        .execute(conn)
        .map(|rows| rows > 0)
}

/// Finds the account a login name names: by its username (any case), or by
/// its e-mail address (in its normal form).
pub fn find_by_login(conn: &mut PgConnection, name: &LoginName) -> QueryResult<Option<User>> {
    // Postgres text cannot hold NUL, so no account can match one; asking
    // would only earn an encoding error.
    if name.lowered().contains('\0') {
        return Ok(None);
    }
    users::table
        .filter(
            lower(users::username)
                .eq(name.lowered())
                .or(users::email.eq(name.canonical())),
        )
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn record_login(conn: &mut PgConnection, id: UserId, at: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::last_login_at.eq(at))
        .execute(conn)
        .map(drop)
}

/// What a login is decided on, read again at the moment it is.
#[derive(Queryable)]
pub struct Credential {
    pub active: bool,
    pub hash: PasswordHash,
    /// Whether a second factor is on.
    pub second_factor: bool,
}

/// Whether the account may still log in, with which hash, and whether it
/// has a second factor: its row locked until the caller's transaction
/// ends, so that a change of password, a deactivation, a deletion or a
/// change of factor waits for the login being decided, or the login sees
/// it. `None` when the account is gone.
pub fn lock_credential(conn: &mut PgConnection, id: UserId) -> QueryResult<Option<Credential>> {
    users::table
        .find(id)
        .select((
            users::is_active,
            users::password_hash,
            users::totp_enabled.or(users::passkey_count.gt(0)),
        ))
        .for_no_key_update()
        .first(conn)
        .optional()
}

/// Swaps the hash, unless another login already did.
pub fn replace_hash(
    conn: &mut PgConnection,
    id: UserId,
    old: &PasswordHash,
    new: &PasswordHash,
) -> QueryResult<()> {
    diesel::update(users::table.find(id).filter(users::password_hash.eq(old)))
        .set(users::password_hash.eq(new))
        .execute(conn)
        .map(drop)
}

/// Data migration: stores every address in the form [`Email::parse`] gives
/// (invisible characters dropped, the domain in IDNA ASCII, the local part
/// folded). Only addresses with non-ASCII characters can change. One that
/// would then collide with another account's is left as it is, with a
/// warning naming both accounts: merging accounts is an operator's call.
pub fn normalise_emails(conn: &mut PgConnection) -> QueryResult<()> {
    let candidates: Vec<(UserId, String)> = users::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "email ~ '[^[:ascii:]]'",
        ))
        .select((users::id, users::email))
        .order(users::id)
        .load(conn)?;
    for (id, stored) in candidates {
        let visible: String = stored.chars().filter(|c| !is_invisible(*c)).collect();
        let Ok(normal) = Email::parse(&visible) else {
            tracing::warn!(
                user_id = %id,
                "an e-mail address cannot be normalised; left as it is"
            );
            continue;
        };
        if normal.as_str() == stored {
            continue;
        }
        let holder: Option<UserId> = users::table
            .filter(users::email.eq(normal.as_str()))
            .select(users::id)
            .first(conn)
            .optional()?;
        if let Some(holder) = holder {
            tracing::warn!(
                user_id = %id,
                holder = %holder,
                "an e-mail address normalises to another account's; left as it is"
            );
            continue;
        }
        diesel::update(users::table.find(id))
            .set(users::email.eq(normal.as_str()))
            .execute(conn)?;
    }
    Ok(())
}
