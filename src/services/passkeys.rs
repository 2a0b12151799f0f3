//! Passkeys (WebAuthn, by webauthn-rs): adding one to an account, naming
//! and removing them, and checking one. The session a passkey earns is
//! [`Login`](crate::services::login::Login)'s to make.
//!
//! Every ceremony's state stays in Postgres between its start and its
//! finish, by the digest of the `challenge_id` the client holds: it is
//! finished once, on any instance, within `WEBAUTHN_CHALLENGE_TTL`, and a
//! client cannot bring a state of its own.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::{Connection, PgConnection};
use serde::Serialize;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, WebauthnError,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use crate::configuration::Bucket;
use crate::db::passkeys::{
    self as stored, CeremonyPurpose, NewCeremony, NewPasskey, StoredPasskey,
};
use crate::db::users::User;
use crate::db::{self, DbError};
use crate::domain::{CeremonyId, Client, PasskeyId, SessionId, UserId};
use crate::services::Core;
use crate::services::audit::{self, Event, Record};
use crate::services::credentials::{ConfirmError, Verdict};
use crate::services::notices::Notice;
use crate::services::throttle::{Blocked, Counter, ThrottleError, client_key};

/// Why a passkey was refused: one answer to the client, this reason in the
/// audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The `challenge_id` is unknown, used, expired, or not this account's
    /// or session's.
    Challenge,
    /// No account has this credential.
    UnknownCredential,
    /// The credential is another account's than the one logging in.
    WrongAccount,
    /// The page that ran the ceremony is not an allowed origin.
    Origin,
    /// The authenticator signed for another relying party.
    RpId,
    /// The signature (or, when registering, the attestation) does not verify.
    Signature,
    /// The counter did not move forward: a copy of the key, or a replay.
    Counter,
    /// The authenticator did not verify the user (PIN or biometrics).
    UserVerification,
    /// This credential is registered already.
    AlreadyRegistered,
    /// Anything else the ceremony's checks refused.
    Invalid,
}

impl Failure {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Challenge => "challenge",
            Self::UnknownCredential => "unknown_credential",
            Self::WrongAccount => "wrong_account",
            Self::Origin => "origin",
            Self::RpId => "rp_id",
            Self::Signature => "signature",
            Self::Counter => "counter",
            Self::UserVerification => "user_verification",
            Self::AlreadyRegistered => "already_registered",
            Self::Invalid => "invalid",
        }
    }

    fn of(error: &WebauthnError) -> Self {
        match error {
            WebauthnError::MismatchedChallenge => Self::Challenge,
            WebauthnError::InvalidRPOrigin => Self::Origin,
            WebauthnError::InvalidRPIDHash => Self::RpId,
            WebauthnError::UserNotVerified => Self::UserVerification,
            WebauthnError::AuthenticationFailure => Self::Signature,
            WebauthnError::CredentialPossibleCompromise => Self::Counter,
            WebauthnError::CredentialNotFound => Self::UnknownCredential,
            _ => Self::Invalid,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// No relying party is configured (`WEBAUTHN_RP_ID`).
    #[error("passkeys are off")]
    Off,
    #[error("the passkey was refused: {}", .0.as_str())]
    Failed(Failure),
    #[error("no such passkey")]
    NotFound,
    /// A second step with a passkey, for an account that has none.
    #[error("the account has no passkey")]
    NoPasskey,
    #[error("too many failed attempts")]
    Throttled(Blocked),
    #[error(transparent)]
    Confirm(#[from] ConfirmError),
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A ceremony started: the id the client finishes it with, and the
/// options for `navigator.credentials.create()` or `.get()`, in WebAuthn's
/// JSON form.
pub struct Started {
    pub challenge_id: CeremonyId,
    pub options: serde_json::Value,
}

/// The passkey a check accepted, and its owner.
pub struct Checked {
    pub user_id: UserId,
    /// The passkey that signed: a session it earns is made only while the
    /// account still has it.
    pub passkey: PasskeyId,
}

#[derive(Clone)]
pub struct Passkeys {
    core: Core,
    /// `None` when passkeys are off.
    relying_party: Option<Arc<Webauthn>>,
    ttl: TimeDelta,
}

impl Passkeys {
    pub fn new(core: Core, relying_party: Option<Webauthn>, ttl: TimeDelta) -> Self {
        Self {
            core,
            relying_party: relying_party.map(Arc::new),
            ttl,
        }
    }

    fn relying_party(&self) -> Result<&Webauthn, PasskeyError> {
        self.relying_party.as_deref().ok_or(PasskeyError::Off)
    }

    /// Starts adding a passkey to the logged-in account, confirmed by the
    /// password (and a code, for an account with TOTP): a discoverable
    /// credential preferred, user verification required, the account's
    /// passkeys excluded.
    pub async fn start_registration(
        &self,
        user: &User,
        session: &SessionId,
        password: secrecy::SecretString,
        code: Option<String>,
        client: &Client,
    ) -> Result<Started, PasskeyError> {
        let relying_party = self.relying_party()?;
        self.core
            .confirm(user, password, Some(code), client)
            .await?;
        let id = user.id;
        let (handle, existing) = db::run(&self.core.pool, move |conn| {
            Ok::<_, diesel::result::Error>((stored::handle(conn, id)?, stored::of_user(conn, id)?))
        })
        .await?;
        let exclude = existing
            .iter()
            .map(|key| key.credential_id.clone())
            .collect();
        let (mut options, state) = relying_party
            .start_passkey_registration(handle, &user.username, &user.username, Some(exclude))
            .map_err(|_| PasskeyError::Failed(Failure::Invalid))?;
        // A passkey that can start a login without a username, where the
        // authenticator can keep one.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Preferred);
            selection.require_resident_key = false;
        }
        let ceremony = Ceremony {
            purpose: CeremonyPurpose::Register,
            user_id: Some(id),
            session_id: Some(session.as_str().to_owned()),
            mfa_token_hash: None,
        };
        self.store(ceremony, &state, &options.public_key).await
    }

    /// Finishes adding a passkey: the credential the authenticator made,
    /// for the ceremony this account and session started.
    pub async fn finish_registration(
        &self,
        user: &User,
        session: &SessionId,
        challenge_id: &CeremonyId,
        name: String,
        credential: &RegisterPublicKeyCredential,
        client: &Client,
    ) -> Result<StoredPasskey, PasskeyError> {
        let relying_party = self.relying_party()?;
        let claimed = self.claim(challenge_id, CeremonyPurpose::Register).await?;
        let state: Option<PasskeyRegistration> = claimed
            .filter(|ceremony| {
                ceremony.user_id == Some(user.id)
                    && ceremony.session_id.as_deref() == Some(session.as_str())
            })
            .and_then(|ceremony| serde_json::from_value(ceremony.state).ok());
        let registered = match state {
            None => Err(Failure::Challenge),
            Some(state) => relying_party
                .finish_passkey_registration(credential, &state)
                .map_err(|error| Failure::of(&error)),
        };
        let passkey = match registered {
            Ok(passkey) => passkey,
            Err(failure) => return Err(self.refused(failure, Some(user.id), client).await),
        };
        let row = NewRow {
            id: PasskeyId::generate(),
            user_id: user.id,
            credential_id: passkey.cred_id().clone(),
            name,
            credential: to_json(&passkey),
            created_at: self.core.clock.now(),
        };
        let event = Record::new(Event::PasskeyAdded, Some(user.id), None, client);
        let notices = self.core.notices.clone();
        let (added, event) = db::run(&self.core.pool, move |conn| {
            let add = |conn: &mut PgConnection| {
                if !stored::insert(conn, &row.as_new())? {
                    return Ok(None);
                }
                notices.queue(conn, Notice::PasskeyAdded, row.user_id)?;
                Ok(Some(row.stored()))
            };
            event.with(conn, add, Option::is_some)
        })
        .await?;
        event.iter().for_each(Record::log);
        match added {
            Some(added) => {
                self.core.sessions.forget_user(user.id);
                Ok(added)
            }
            None => Err(self
                .refused(Failure::AlreadyRegistered, Some(user.id), client)
                .await),
        }
    }

    /// The account's passkeys, oldest first.
    pub async fn list(&self, user_id: UserId) -> Result<Vec<StoredPasskey>, PasskeyError> {
        Ok(db::run(&self.core.pool, move |conn| stored::of_user(conn, user_id)).await?)
    }

    pub async fn rename(
        &self,
        user_id: UserId,
        id: PasskeyId,
        name: String,
    ) -> Result<StoredPasskey, PasskeyError> {
        db::run(&self.core.pool, move |conn| {
            stored::rename(conn, user_id, &id, &name)
        })
        .await?
        .ok_or(PasskeyError::NotFound)
    }

    /// Removes one of the account's passkeys, confirmed by the password
    /// (and a code, for an account with TOTP).
    pub async fn remove(
        &self,
        user: &User,
        id: PasskeyId,
        password: secrecy::SecretString,
        code: Option<String>,
        client: &Client,
    ) -> Result<(), PasskeyError> {
        let owned = self.list(user.id).await?.iter().any(|key| key.id == id);
        if !owned {
            return Err(PasskeyError::NotFound);
        }
        self.core
            .confirm(user, password, Some(code), client)
            .await?;
        let user_id = user.id;
        let event = Record::new(Event::PasskeyRemoved, Some(user_id), None, client);
        let notices = self.core.notices.clone();
        let (removed, event) = db::run(&self.core.pool, move |conn| {
            let remove = |conn: &mut PgConnection| {
                let removed = stored::delete(conn, user_id, &id)?;
                if removed {
                    notices.queue(conn, Notice::PasskeyRemoved, user_id)?;
                }
                Ok(removed)
            };
            event.with(conn, remove, |removed| *removed)
        })
        .await?;
        event.iter().for_each(Record::log);
        if !removed {
            return Err(PasskeyError::NotFound);
        }
        self.core.sessions.forget_user(user_id);
        Ok(())
    }

    /// Starts a login with a passkey alone: request options that name no
    /// credential, for the authenticator to offer the ones it holds. Anyone
    /// may ask, and each stores a ceremony until it expires: so many a
    /// client address (`PASSKEY_LOGINS_PER_IP`).
    pub async fn start_login(&self, client: &Client) -> Result<Started, PasskeyError> {
        let relying_party = self.relying_party()?;
        let counter = Counter::new(
            Bucket::PasskeyLogin,
            client_key(client.ip),
            &self.core.limits,
        );
        self.core
            .throttle
            .hit(&[counter])
            .await?
            .map_err(PasskeyError::Throttled)?;
        let (options, state) = relying_party
            .start_discoverable_authentication()
            .map_err(|_| PasskeyError::Failed(Failure::Invalid))?;
        let ceremony = Ceremony {
            purpose: CeremonyPurpose::Login,
            user_id: None,
            session_id: None,
            mfa_token_hash: None,
        };
        self.store(ceremony, &state, &options.public_key).await
    }

    /// Starts the second step of a password login with one of the
    /// account's passkeys, for the challenge whose token digest is given.
    pub async fn start_second_factor(
        &self,
        user_id: UserId,
        mfa_token_hash: [u8; 32],
    ) -> Result<Started, PasskeyError> {
        let relying_party = self.relying_party()?;
        let keys: Vec<Passkey> = self
            .list(user_id)
            .await?
            .into_iter()
            .filter_map(|key| serde_json::from_value(key.credential).ok())
            .collect();
        if keys.is_empty() {
            return Err(PasskeyError::NoPasskey);
        }
        let (options, state) = relying_party
            .start_passkey_authentication(&keys)
            .map_err(|_| PasskeyError::Failed(Failure::Invalid))?;
        let ceremony = Ceremony {
            purpose: CeremonyPurpose::Mfa,
            user_id: Some(user_id),
            session_id: None,
            mfa_token_hash: Some(mfa_token_hash.to_vec()),
        };
        self.store(ceremony, &state, &options.public_key).await
    }

    /// Checks a passkey login's assertion: the account whose passkey
    /// signed. Under the login throttle, as a password is; every failure
    /// audited with its reason.
    pub async fn check_login(
        &self,
        challenge_id: &CeremonyId,
        credential: &PublicKeyCredential,
        client: &Client,
    ) -> Result<Checked, PasskeyError> {
        let claimed = self.claim(challenge_id, CeremonyPurpose::Login).await?;
        let state = claimed.and_then(|ceremony| {
            serde_json::from_value::<DiscoverableAuthentication>(ceremony.state).ok()
        });
        self.check(
            state,
            None,
            credential,
            client,
            |relying_party, state, key| {
                relying_party.finish_discoverable_authentication_v2(credential, state, key)
            },
        )
        .await
    }

    /// Checks the passkey that answers the second step of `user_id`'s
    /// password login (the challenge whose token digest is given).
    pub async fn check_second_factor(
        &self,
        challenge_id: &CeremonyId,
        user_id: UserId,
        mfa_token_hash: [u8; 32],
        credential: &PublicKeyCredential,
        client: &Client,
    ) -> Result<Checked, PasskeyError> {
        let claimed = self.claim(challenge_id, CeremonyPurpose::Mfa).await?;
        let state = claimed
            .filter(|ceremony| {
                ceremony.user_id == Some(user_id)
                    && ceremony.mfa_token_hash.as_deref() == Some(mfa_token_hash.as_slice())
            })
            .and_then(|ceremony| {
                serde_json::from_value::<PasskeyAuthentication>(ceremony.state).ok()
            });
        self.check(
            state,
            Some(user_id),
            credential,
            client,
            |relying_party, state, _| {
                relying_party.finish_passkey_authentication(credential, &state)
            },
        )
        .await
    }

    /// The checks both logins share: the credential is a stored passkey
    /// (of `expected`, when the account is known), the user handle (when
    /// sent) is its owner's, `verify` accepts the assertion, and its counter
    /// moves forward: all under the login throttle.
    async fn check<S>(
        &self,
        state: Option<S>,
        expected: Option<UserId>,
        credential: &PublicKeyCredential,
        client: &Client,
        verify: impl FnOnce(
            &Webauthn,
            S,
            &Passkey,
        )
            -> Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError>,
    ) -> Result<Checked, PasskeyError> {
        let relying_party = self.relying_party()?;
        let credential_id = credential.get_credential_id().to_vec();
        let handle = credential
            .response
            .user_handle
            .as_deref()
            .map(|handle| uuid::Uuid::from_slice(handle).ok());
        let (found, handle_owner) = db::run(&self.core.pool, move |conn| {
            let found = stored::by_credential_id(conn, &credential_id)?;
            let owner = match handle {
                Some(Some(handle)) => Some(stored::owner_of_handle(conn, handle)?),
                Some(None) => Some(None),
                None => None,
            };
            Ok::<_, diesel::result::Error>((found, owner))
        })
        .await?;
        let owner = found.as_ref().map(|key| key.user_id);
        let passkey = found.as_ref().map(|key| key.id.clone());
        let subject = match owner.or(expected) {
            Some(user_id) => crate::services::credentials::account_key(user_id),
            None => "passkey:unknown".to_owned(),
        };
        let now = self.core.clock.now();
        let mut failure = None;
        let attempt = async {
            let outcome = self.verified(
                relying_party,
                state,
                expected,
                found.as_ref(),
                handle_owner,
                verify,
            );
            let outcome = match outcome {
                Ok((key, credential, count)) => {
                    self.record_use(key, credential, count, now).await?
                }
                Err(failure) => Err(failure),
            };
            failure = outcome.err();
            Ok::<_, DbError>(failure.is_none())
        };
        let verdict = self
            .core
            .throttled::<PasskeyError, DbError>(&subject, client, true, attempt)
            .await?;
        match (verdict, owner, passkey) {
            (Verdict::Matched, Some(user_id), Some(passkey)) => Ok(Checked { user_id, passkey }),
            (Verdict::Blocked(blocked), _, _) => {
                let event = Record::new(Event::LoginThrottled, owner, None, client);
                audit::record(&self.core.pool, event).await;
                Err(PasskeyError::Throttled(blocked))
            }
            _ => {
                let failure = failure.unwrap_or(Failure::Invalid);
                Err(self.refused(failure, owner.or(expected), client).await)
            }
        }
    }

    /// The assertion judged: the passkey as it is to be stored after this
    /// use, and its counter; or why not.
    fn verified<S>(
        &self,
        relying_party: &Webauthn,
        state: Option<S>,
        expected: Option<UserId>,
        found: Option<&StoredPasskey>,
        handle_owner: Option<Option<UserId>>,
        verify: impl FnOnce(
            &Webauthn,
            S,
            &Passkey,
        )
            -> Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError>,
    ) -> Result<(StoredPasskey, serde_json::Value, i64), Failure> {
        let state = state.ok_or(Failure::Challenge)?;
        let found = found.ok_or(Failure::UnknownCredential)?;
        if expected.is_some_and(|expected| expected != found.user_id)
            || handle_owner.is_some_and(|owner| owner != Some(found.user_id))
        {
            return Err(Failure::WrongAccount);
        }
        let mut passkey: Passkey =
            serde_json::from_value(found.credential.clone()).map_err(|_| Failure::Invalid)?;
        let result = verify(relying_party, state, &passkey).map_err(|error| Failure::of(&error))?;
        if !result.user_verified() {
            return Err(Failure::UserVerification);
        }
        // webauthn-rs compares the counter with the passkey as the ceremony
        // began (the second step's state holds a copy): compared again with
        // the one stored now, so that an older assertion presented after a
        // newer one is no use. Synced passkeys keep 0, and skip this.
        let count = i64::from(result.counter());
        if (count > 0 || found.sign_count > 0) && count <= found.sign_count {
            return Err(Failure::Counter);
        }
        passkey.update_credential(&result);
        Ok((
            found.clone(),
            to_json(&passkey),
            i64::from(result.counter()),
        ))
    }

    /// Stores a use, if no other use of the passkey moved its counter
    /// meanwhile.
    async fn record_use(
        &self,
        key: StoredPasskey,
        credential: serde_json::Value,
        count: i64,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Failure>, DbError> {
        let recorded = db::run(&self.core.pool, move |conn| {
            stored::record_use(conn, &key, &credential, count, now)
        })
        .await?;
        Ok(if recorded {
            Ok(())
        } else {
            Err(Failure::Counter)
        })
    }

    /// Stores a started ceremony's state.
    async fn store(
        &self,
        ceremony: Ceremony,
        state: &impl Serialize,
        options: &impl Serialize,
    ) -> Result<Started, PasskeyError> {
        let challenge_id = CeremonyId::generate();
        let digest = challenge_id.digest();
        let state = to_json(state);
        let now = self.core.clock.now();
        let expires_at = now + self.ttl;
        db::run(&self.core.pool, move |conn| {
            stored::insert_ceremony(
                conn,
                &NewCeremony {
                    id_hash: &digest,
                    purpose: ceremony.purpose.as_str(),
                    user_id: ceremony.user_id,
                    session_id: ceremony.session_id.as_deref(),
                    mfa_token_hash: ceremony.mfa_token_hash.as_deref(),
                    state: &state,
                    created_at: now,
                    expires_at,
                },
            )
        })
        .await?;
        Ok(Started {
            challenge_id,
            options: to_json(options),
        })
    }

    /// Takes a ceremony out of the table, once.
    async fn claim(
        &self,
        challenge_id: &CeremonyId,
        purpose: CeremonyPurpose,
    ) -> Result<Option<stored::Ceremony>, PasskeyError> {
        let (digest, now) = (challenge_id.digest(), self.core.clock.now());
        Ok(db::run(&self.core.pool, move |conn| {
            conn.transaction(|conn| stored::claim_ceremony(conn, &digest, purpose, now))
        })
        .await?)
    }

    /// Audits a refused passkey, with its reason: the error to answer.
    async fn refused(
        &self,
        failure: Failure,
        user_id: Option<UserId>,
        client: &Client,
    ) -> PasskeyError {
        let event =
            Record::new(Event::PasskeyFailure, user_id, None, client).because(failure.as_str());
        audit::record(&self.core.pool, event).await;
        PasskeyError::Failed(failure)
    }
}

/// What a ceremony is bound to.
struct Ceremony {
    purpose: CeremonyPurpose,
    user_id: Option<UserId>,
    session_id: Option<String>,
    mfa_token_hash: Option<Vec<u8>>,
}

/// A new passkey's row, owned, to move into a blocking task.
struct NewRow {
    id: PasskeyId,
    user_id: UserId,
    credential_id: Vec<u8>,
    name: String,
    credential: serde_json::Value,
    created_at: DateTime<Utc>,
}

impl NewRow {
    fn as_new(&self) -> NewPasskey<'_> {
        NewPasskey {
            id: &self.id,
            user_id: self.user_id,
            credential_id: &self.credential_id,
            name: &self.name,
            credential: &self.credential,
            sign_count: 0,
            created_at: self.created_at,
        }
    }

    fn stored(&self) -> StoredPasskey {
        StoredPasskey {
            id: self.id.clone(),
            user_id: self.user_id,
            credential_id: self.credential_id.clone(),
            name: self.name.clone(),
            credential: self.credential.clone(),
            sign_count: 0,
            created_at: self.created_at,
            last_used_at: None,
        }
    }
}

/// webauthn-rs's types as JSON; they serialise without failing (plain
/// data), and a failure would only mean an empty object, refused later.
fn to_json(value: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}
