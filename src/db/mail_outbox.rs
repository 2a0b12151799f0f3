//! The `mail_outbox` table: mails to send, queued in the transaction of the
//! change that needs them, and taken by one worker at a time under a row
//! lock.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::email_tokens::Purpose;
use crate::domain::UserId;
use crate::schema::{mail_outbox, users};

/// A queued mail: what to send, not the mail itself (made when it is sent).
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = mail_outbox, check_for_backend(diesel::pg::Pg))]
pub struct QueuedMail {
    pub id: i64,
    pub kind: String,
    /// The account it is about; none for a mail asked for by address (a
    /// password reset).
    pub user_id: Option<UserId>,
    pub address: String,
    /// The client network that asked for it, if a client did.
    pub requested_by: Option<String>,
    /// When it was queued: when what it tells of happened.
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Attempts before this one.
    pub attempts: i32,
}

/// Queues a mail, inside the caller's transaction.
pub fn enqueue(
    conn: &mut PgConnection,
    kind: &str,
    user_id: Option<UserId>,
    address: &str,
    requested_by: Option<&str>,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(mail_outbox::table)
        .values((
            mail_outbox::kind.eq(kind),
            mail_outbox::user_id.eq(user_id),
            mail_outbox::address.eq(address),
            mail_outbox::requested_by.eq(requested_by),
            mail_outbox::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Queues a mail to the account's address as it is now, inside the
/// caller's transaction; nothing when there is no such account.
pub fn enqueue_to_account(
    conn: &mut PgConnection,
    kind: &str,
    user_id: UserId,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    use diesel::sql_types::{Text, Timestamptz};

    let row = users::table.find(user_id).select((
        kind.into_sql::<Text>(),
        users::id.nullable(),
        users::email,
        expires_at.into_sql::<Timestamptz>(),
    ));
    diesel::insert_into(mail_outbox::table)
        .values(row)
        .into_columns((
            mail_outbox::kind,
            mail_outbox::user_id,
            mail_outbox::address,
            mail_outbox::expires_at,
        ))
        .execute(conn)
        .map(drop)
}

/// Locks the mail due first, in the caller's transaction, for as long as
/// it lasts; mails another transaction holds are skipped, not waited for.
pub fn lock_next_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> QueryResult<Option<QueuedMail>> {
    mail_outbox::table
        .filter(mail_outbox::next_attempt_at.le(now))
        .order(mail_outbox::next_attempt_at)
        .select(QueuedMail::as_select())
        .for_update()
        .skip_locked()
        .first(conn)
        .optional()
}

/// Removes a mail: delivered, or nothing left to deliver.
pub fn remove(conn: &mut PgConnection, id: i64) -> QueryResult<()> {
    diesel::delete(mail_outbox::table.find(id))
        .execute(conn)
        .map(drop)
}

/// Puts a mail back for another attempt at `at`, with how many it has had
/// and why the last one failed.
pub fn retry_at(
    conn: &mut PgConnection,
    id: i64,
    attempts: i32,
    at: DateTime<Utc>,
    error: &str,
) -> QueryResult<()> {
    diesel::update(mail_outbox::table.find(id))
        .set((
            mail_outbox::attempts.eq(attempts),
            mail_outbox::next_attempt_at.eq(at),
            mail_outbox::last_error.eq(error),
        ))
        .execute(conn)
        .map(drop)
}

/// Drops the password resets queued for an address (its password
/// changed). One being sent right now is left to its worker: waiting for a
/// mail server would hold up the change, and the mail is on its way anyway.
pub fn drop_resets_for(conn: &mut PgConnection, address: &str) -> QueryResult<usize> {
    let queued: Vec<i64> = mail_outbox::table
        .filter(mail_outbox::kind.eq(Purpose::Reset.as_str()))
        .filter(mail_outbox::address.eq(address))
        .select(mail_outbox::id)
        .for_update()
        .skip_locked()
        .load(conn)?;
    diesel::delete(mail_outbox::table.filter(mail_outbox::id.eq_any(&queued))).execute(conn)
}

/// How many mails wait, for the metrics.
pub fn depth(conn: &mut PgConnection) -> QueryResult<i64> {
    mail_outbox::table.count().get_result(conn)
}
