//! Logging in: a password for a new session (or, for an account with a
//! second factor, for a challenge that a code then turns into a session),
//! under the login throttle, with the audit trail of whatever happened.

use diesel::{Connection, PgConnection};
use secrecy::SecretString;

use crate::db::second_factor::{self, Challenge, ChallengePurpose, NewChallenge};
use crate::db::sessions::Session;
use crate::db::users::{self, User};
use crate::db::{self, DbError, passkeys};
use crate::domain::{AuthMethod, CeremonyId, Client, LoginName, MfaToken, PasswordHash, UserId};
use crate::services::Core;
use crate::services::audit::{self, Event, Record};
use crate::services::credentials::{CodeVerdict, Verdict, account_subject};
use crate::services::mfa::{Mfa, MfaError};
use crate::services::passkeys::{Failure, PasskeyError, Passkeys, Started};
use crate::services::passwords::HashError;
use crate::services::recovery::{Recovery, RecoveryError};
use crate::services::throttle::{Blocked, ThrottleError};
use webauthn_rs::prelude::PublicKeyCredential;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown identifier or wrong password; `user_id` is for the audit
    /// trail only and never reaches the client.
    #[error("invalid username or password")]
    InvalidCredentials { user_id: Option<UserId> },
    #[error("account disabled")]
    Inactive { user_id: UserId },
    /// The right password, but `REQUIRE_VERIFIED_EMAIL` is on and the
    /// address is not verified yet; `mailed` when a new link is on its way.
    #[error("the address is not verified")]
    Unverified { mailed: bool },
    /// The right password for an account with a second factor: the login
    /// goes on with this token and one of the account's factors.
    #[error("a second factor is required")]
    MfaRequired(MfaToken, Factors),
    /// The right password for an account without a second factor, under
    /// `MFA_REQUIRED`: the login goes on with setting one up, with this
    /// token.
    #[error("a second factor must be set up")]
    MfaEnrollmentRequired(MfaToken),
    /// The second step's token is unknown, used, void or expired.
    #[error("the second step's token is not valid")]
    MfaExpired,
    #[error("the code is wrong")]
    InvalidCode,
    #[error("too many failed logins")]
    Throttled(Blocked),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// Confirming the factor an enrolment set up.
    #[error(transparent)]
    Mfa(#[from] MfaError),
    /// A passkey refused (or passkeys off).
    #[error(transparent)]
    Passkey(#[from] PasskeyError),
}

/// Which second factors an account has: what its second step accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Factors {
    /// A TOTP authenticator, and its recovery codes.
    pub totp: bool,
    pub passkey: bool,
}

impl Factors {
    fn of(user: &User) -> Self {
        Self {
            totp: user.totp_enabled,
            passkey: user.passkey_count > 0,
        }
    }
}

/// What answers a login's second step.
pub enum Proof {
    /// A TOTP code or a recovery code.
    Code(String),
    /// A passkey's assertion, for a ceremony started with the login's token.
    Passkey {
        challenge_id: CeremonyId,
        credential: Box<PublicKeyCredential>,
    },
}

/// Wrong codes that void a second step's token.
const CODES_PER_CHALLENGE: i32 = 5;

/// What a login asked for beyond the password: kept with a challenge for
/// the second step to honour.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub remember: bool,
    /// Where to go next, already judged safe.
    pub next: String,
}

/// A successful login: the user, the new session, and what was asked.
pub struct LoggedIn {
    pub user: User,
    pub session: Session,
    pub wanted: Wanted,
}

/// What a login asks for beyond the password, from the settings.
#[derive(Clone, Debug)]
pub struct LoginPolicy {
    /// `REQUIRE_VERIFIED_EMAIL`.
    pub require_verified_email: bool,
    /// `MFA_REQUIRED`.
    pub mfa_required: bool,
    /// How long a second step may wait (`MFA_TOKEN_TTL`).
    pub challenge_ttl: chrono::TimeDelta,
}

#[derive(Clone)]
pub struct Login {
    core: Core,
    /// For a fresh confirmation link when an unverified address is refused.
    recovery: Recovery,
    /// For the factor a login must set up under `MFA_REQUIRED`.
    mfa: Mfa,
    /// For logins with a passkey, alone or as the second factor.
    passkeys: Passkeys,
    policy: LoginPolicy,
}

impl Login {
    pub fn new(
        core: Core,
        recovery: Recovery,
        mfa: Mfa,
        passkeys: Passkeys,
        policy: LoginPolicy,
    ) -> Self {
        Self {
            core,
            recovery,
            mfa,
            passkeys,
            policy,
        }
    }

    /// Logs in: throttle check, password check, a new session, and the
    /// audit trail of whichever happened.
    ///
    /// Failed logins are counted per (account, client address) and per
    /// client address. The account is whichever the name reaches, however
    /// it is spelt (username or address, any case); a name that reaches
    /// none counts under its normal spelling. Only failures count; attempts
    /// in flight make parallel ones wait (see
    /// [`Throttle::begin`](crate::services::throttle::Throttle::begin)).
    ///
    /// The session is made only if, at that moment, the account is still
    /// active and still has the password hash that was checked: a login in
    /// flight cannot outlive a password change, a reset, a deactivation or
    /// a deletion made meanwhile, by any instance or by plain SQL. A hash
    /// that changed because another login upgraded it, or a factor turned
    /// on or off meanwhile, has the login decided again.
    ///
    /// For an account with a second factor, the right password makes no
    /// session: it makes a challenge, answered by [`Login::second_step`].
    #[tracing::instrument(skip_all)]
    pub async fn log_in(
        &self,
        identifier: String,
        password: SecretString,
        wanted: Wanted,
        client: &Client,
    ) -> Result<LoggedIn, LoginError> {
        let mut checks_left = 2;
        loop {
            checks_left -= 1;
            match self
                .attempt(&identifier, &password, &wanted, client)
                .await?
            {
                Attempted::LoggedIn(user, session) => {
                    login_outcome("success");
                    return Ok(LoggedIn {
                        user,
                        session: *session,
                        wanted,
                    });
                }
                Attempted::Refused(error) => return Err(error),
                Attempted::CredentialChanged { user_id } if checks_left == 0 => {
                    self.refuse(
                        Event::LoginFailure,
                        Some(user_id),
                        &identifier,
                        client,
                        "failure",
                    )
                    .await;
                    return Err(LoginError::InvalidCredentials {
                        user_id: Some(user_id),
                    });
                }
                Attempted::CredentialChanged { .. } => {}
            }
        }
    }

    /// One check of the password, and the session if it holds.
    async fn attempt(
        &self,
        identifier: &str,
        password: &SecretString,
        wanted: &Wanted,
        client: &Client,
    ) -> Result<Attempted, LoginError> {
        let name = LoginName::parse(identifier);
        let lookup = name.clone();
        let found = db::run(&self.core.pool, move |conn| {
            users::find_by_login(conn, &lookup)
        })
        .await?;
        let subject = match &found {
            Some(user) => account_subject(user),
            None => format!("name:{}", name.canonical()),
        };
        let user_id = found.as_ref().map(|user| user.id);
        // Verify even without an account, so unknown users cost a hash too.
        let hash = found.as_ref().map(|user| user.password_hash.clone());
        let second_step = found.as_ref().is_some_and(User::has_second_factor);
        let verdict = self
            .core
            .check_password::<LoginError>(&subject, client, password.clone(), hash, !second_step)
            .await?;
        let refuse = async |kind, user_id, outcome, error| {
            self.refuse(kind, user_id, identifier, client, outcome)
                .await;
            Ok(Attempted::Refused(error))
        };
        let mut user = match (verdict, found) {
            (Verdict::Blocked(blocked), _) => {
                return refuse(
                    Event::LoginThrottled,
                    user_id,
                    "throttled",
                    LoginError::Throttled(blocked),
                )
                .await;
            }
            (Verdict::Matched, Some(user)) => user,
            (Verdict::Matched | Verdict::Mismatched, _) => {
                return refuse(
                    Event::LoginFailure,
                    user_id,
                    "failure",
                    LoginError::InvalidCredentials { user_id },
                )
                .await;
            }
        };
        // The right password is no guess, even for a disabled account,
        // which is only revealed to someone who knows its password.
        if !user.is_active {
            let error = LoginError::Inactive { user_id: user.id };
            return refuse(Event::LoginFailure, Some(user.id), "inactive", error).await;
        }
        if self.policy.require_verified_email && user.email_verified_at.is_none() {
            self.refuse(
                Event::LoginFailure,
                Some(user.id),
                identifier,
                client,
                "unverified",
            )
            .await;
            // Whoever knows the password gets a fresh link, within the
            // limits every recovery mail has (and not at every attempt).
            let mailed = self.recovery.remail_on_refused_login(&user, client).await?;
            return Ok(Attempted::Refused(LoginError::Unverified { mailed }));
        }
        let upgrade = match self.core.hasher.needs_upgrade(&user.password_hash) {
            true => self.upgraded_hash(&user, password.clone()).await,
            false => None,
        };
        let (id, checked, new) = (user.id, user.password_hash.clone(), upgrade.clone());
        let admit = move |conn: &mut PgConnection| {
            // A factor turned on or off meanwhile changes what the password
            // alone is worth: decided again.
            if let Err(changed) = still_as_checked(conn, id, &checked, second_step)? {
                return Ok(Err(changed));
            }
            if let Some(new) = &new {
                users::replace_hash(conn, id, &checked, new)?;
            }
            Ok(Ok(()))
        };
        if second_step {
            let purpose = ChallengePurpose::Login;
            return self.challenge(&user, purpose, wanted, client, admit).await;
        }
        if self.policy.mfa_required {
            let purpose = ChallengePurpose::Enroll;
            return self.challenge(&user, purpose, wanted, client, admit).await;
        }
        let success = Record::new(Event::LoginSuccess, Some(id), Some(identifier), client);
        let started = self
            .core
            .sessions
            .start(
                id,
                wanted.remember,
                client.clone(),
                &[AuthMethod::Password],
                success,
                admit,
            )
            .await?;
        match started {
            Ok(session) => {
                if let Some(upgraded) = upgrade {
                    tracing::info!(user_id = %id, "upgraded a password hash to the configured cost");
                    user.password_hash = upgraded;
                }
                user.last_login_at = Some(session.created_at);
                Ok(Attempted::LoggedIn(user, Box::new(session)))
            }
            Err(Changed::Credential) => Ok(Attempted::CredentialChanged { user_id: id }),
            Err(Changed::Gone) => {
                let error = LoginError::InvalidCredentials { user_id: None };
                refuse(Event::LoginFailure, None, "failure", error).await
            }
            Err(Changed::Inactive) => {
                let error = LoginError::Inactive { user_id: id };
                refuse(Event::LoginFailure, Some(id), "inactive", error).await
            }
        }
    }

    /// The second step owed by an account with a factor (or, under
    /// `MFA_REQUIRED`, by one that must set it up): a challenge, made only if
    /// `admit` agrees (as a session would be), for the token that
    /// [`Login::second_step`] (or [`Login::confirm_enrolment`]) takes.
    async fn challenge(
        &self,
        user: &User,
        purpose: ChallengePurpose,
        wanted: &Wanted,
        client: &Client,
        admit: impl FnOnce(&mut PgConnection) -> diesel::QueryResult<Result<(), Changed>>
        + Send
        + 'static,
    ) -> Result<Attempted, LoginError> {
        let token = MfaToken::generate();
        let digest = token.digest();
        let now = self.core.clock.now();
        let (user_id, wanted, ip) = (user.id, wanted.clone(), client.ip.map(Into::into));
        let expires_at = now + self.policy.challenge_ttl;
        let made = db::run(&self.core.pool, move |conn| {
            conn.transaction(|conn| {
                if let Err(changed) = admit(conn)? {
                    return Ok(Err(changed));
                }
                second_factor::insert_challenge(
                    conn,
                    &NewChallenge {
                        token_hash: &digest,
                        user_id,
                        purpose: purpose.as_str(),
                        remember: wanted.remember,
                        next: &wanted.next,
                        ip,
                        created_at: now,
                        expires_at,
                    },
                )?;
                Ok::<_, diesel::result::Error>(Ok(()))
            })
        })
        .await?;
        match made {
            Ok(()) => Ok(Attempted::Refused(match purpose {
                ChallengePurpose::Login => {
                    login_outcome("mfa_required");
                    LoginError::MfaRequired(token, Factors::of(user))
                }
                ChallengePurpose::Enroll => {
                    login_outcome("mfa_enrollment_required");
                    LoginError::MfaEnrollmentRequired(token)
                }
            })),
            Err(Changed::Credential) => Ok(Attempted::CredentialChanged { user_id }),
            Err(Changed::Gone) => {
                self.refuse(Event::LoginFailure, None, &user.username, client, "failure")
                    .await;
                let error = LoginError::InvalidCredentials { user_id: None };
                Ok(Attempted::Refused(error))
            }
            Err(Changed::Inactive) => {
                self.refuse(
                    Event::LoginFailure,
                    Some(user_id),
                    &user.username,
                    client,
                    "inactive",
                )
                .await;
                Ok(Attempted::Refused(LoginError::Inactive { user_id }))
            }
        }
    }

    /// The second step: a code (TOTP or recovery) or a passkey for the
    /// challenge that `token` names, made by this client. Wrong codes and
    /// refused passkeys count as failed logins of the account, and void the
    /// challenge at the fifth.
    #[tracing::instrument(skip_all)]
    pub async fn second_step(
        &self,
        token: MfaToken,
        proof: Proof,
        client: &Client,
    ) -> Result<LoggedIn, LoginError> {
        let Some((challenge, user)) = self.claim(&token, ChallengePurpose::Login, client).await?
        else {
            login_outcome("mfa_expired");
            return Err(LoginError::MfaExpired);
        };
        // A refused passkey was audited, with its reason, where it was
        // checked; it is answered as itself.
        let (verdict, refused_passkey) = match proof {
            Proof::Code(code) => {
                let verdict = self
                    .core
                    .check_code::<LoginError>(user.id, client, &code)
                    .await;
                (verdict, None)
            }
            Proof::Passkey {
                challenge_id,
                credential,
            } => match self
                .passkeys
                .check_second_factor(&challenge_id, user.id, token.digest(), &credential, client)
                .await
            {
                Ok(_) => (Ok(CodeVerdict::Right(AuthMethod::Passkey)), None),
                Err(PasskeyError::Failed(failure)) => {
                    (Ok(CodeVerdict::Wrong), Some(PasskeyError::Failed(failure)))
                }
                Err(PasskeyError::Throttled(blocked)) => (
                    Ok(CodeVerdict::Blocked(blocked)),
                    Some(PasskeyError::Throttled(blocked)),
                ),
                Err(error) => (Err(error.into()), None),
            },
        };
        // Anything but the right code puts the challenge back, a wrong code
        // counted against it.
        let failures = match &verdict {
            Ok(CodeVerdict::Right(_)) => None,
            Ok(CodeVerdict::Wrong) => Some(challenge.failures + 1),
            Ok(CodeVerdict::Blocked(_)) | Err(_) => Some(challenge.failures),
        };
        if let Some(failures) = failures {
            let checked = &user.password_hash;
            self.put_back(token.digest(), &challenge, checked, failures)
                .await?;
        }
        if let Some(refused) = refused_passkey {
            login_outcome("passkey_failed");
            return Err(refused.into());
        }
        let method = match verdict? {
            CodeVerdict::Right(method) => method,
            CodeVerdict::Wrong => {
                self.refuse(
                    Event::MfaFailure,
                    Some(user.id),
                    &user.username,
                    client,
                    "mfa_failure",
                )
                .await;
                return Err(LoginError::InvalidCode);
            }
            CodeVerdict::Blocked(blocked) => {
                self.refuse(
                    Event::LoginThrottled,
                    Some(user.id),
                    &user.username,
                    client,
                    "throttled",
                )
                .await;
                return Err(LoginError::Throttled(blocked));
            }
        };
        // The session is made only if the account is as the password found
        // it, factor included: a second step in flight cannot outlive the
        // factor's removal, nor a password change.
        let (id, checked) = (user.id, user.password_hash.clone());
        let admit = move |conn: &mut PgConnection| {
            Ok(still_as_checked(conn, id, &checked, true)?.map_err(Unmade::Changed))
        };
        self.finish(&challenge, user, method, client, admit).await
    }

    /// The account an enrolment's `mfa_token` stands for (`MFA_REQUIRED`),
    /// made by this client: to set up a factor for, which [`Login::confirm_enrolment`]
    /// then confirms. The token stays valid.
    pub async fn enrolment_account(
        &self,
        token: &MfaToken,
        client: &Client,
    ) -> Result<User, LoginError> {
        let digest = token.digest();
        let (ip, now) = (client.ip.map(Into::into), self.core.clock.now());
        let purpose = ChallengePurpose::Enroll;
        let user = db::run(
            &self.core.pool,
            move |conn| match second_factor::find_challenge(conn, &digest, purpose, ip, now)? {
                Some(challenge) => users::find(conn, challenge.user_id),
                None => Ok(None),
            },
        )
        .await?;
        user.ok_or(LoginError::MfaExpired)
    }

    /// Confirms the factor an enrolment's token set up, with a code from
    /// it, and finishes the login: the recovery codes, and the session the
    /// password was owed. Wrong codes void the token at the fifth.
    #[tracing::instrument(skip_all)]
    pub async fn confirm_enrolment(
        &self,
        token: MfaToken,
        code: &str,
        client: &Client,
    ) -> Result<(LoggedIn, Vec<String>), LoginError> {
        let Some((challenge, user)) = self.claim(&token, ChallengePurpose::Enroll, client).await?
        else {
            login_outcome("mfa_expired");
            return Err(LoginError::MfaExpired);
        };
        // The factor goes on in the session's own transaction, and only for
        // the account as the password found it (still active, same hash, no
        // factor yet): a change made meanwhile turns on nothing.
        let (confirmation, codes) = self.mfa.confirmation(user.id, code, client);
        let enabled = confirmation.event.clone();
        let (id, checked) = (user.id, user.password_hash.clone());
        let kept = checked.clone();
        let admit = move |conn: &mut PgConnection| {
            if let Err(changed) = still_as_checked(conn, id, &checked, false)? {
                return Ok(Err(Unmade::Changed(changed)));
            }
            Ok(confirmation.run(conn)?.map_err(Unmade::Code))
        };
        match self
            .finish(&challenge, user, AuthMethod::Otp, client, admit)
            .await
        {
            Ok(logged_in) => {
                enabled.log();
                Ok((logged_in, codes))
            }
            Err(LoginError::Mfa(error)) => {
                let (digest, failures) = (token.digest(), challenge.failures + 1);
                self.put_back(digest, &challenge, &kept, failures).await?;
                Err(error.into())
            }
            Err(error) => Err(error),
        }
    }

    /// Takes the challenge `token` names for `purpose`, made by this client,
    /// with its account.
    async fn claim(
        &self,
        token: &MfaToken,
        purpose: ChallengePurpose,
        client: &Client,
    ) -> Result<Option<(Challenge, User)>, DbError> {
        let digest = token.digest();
        let (ip, now) = (client.ip.map(Into::into), self.core.clock.now());
        db::run(&self.core.pool, move |conn| {
            let Some(challenge) = second_factor::claim_challenge(conn, &digest, purpose, ip, now)?
            else {
                return Ok(None);
            };
            let user = users::find(conn, challenge.user_id)?;
            Ok(user.map(|user| (challenge, user)))
        })
        .await
    }

    /// Puts a claimed challenge back with its count of wrong codes (void at
    /// the limit), if its account is still as the password found it: the
    /// trigger that voids challenges on a change could not see this one
    /// while it was out of the table.
    async fn put_back(
        &self,
        digest: [u8; 32],
        challenge: &Challenge,
        checked: &PasswordHash,
        failures: i32,
    ) -> Result<(), DbError> {
        let (kept, checked) = (challenge.clone(), checked.clone());
        let owes_factor = challenge.purpose == ChallengePurpose::Login.as_str();
        db::run(&self.core.pool, move |conn| {
            conn.transaction(|conn| {
                if still_as_checked(conn, kept.user_id, &checked, owes_factor)?.is_err() {
                    return Ok(());
                }
                second_factor::restore_challenge(
                    conn,
                    &digest,
                    &kept,
                    failures,
                    CODES_PER_CHALLENGE,
                )
            })
        })
        .await
    }

    /// The session a claimed challenge was owed, now that `method` proved
    /// the second factor, made if `admit` agrees in its transaction.
    async fn finish(
        &self,
        challenge: &Challenge,
        user: User,
        method: AuthMethod,
        client: &Client,
        admit: impl FnOnce(&mut PgConnection) -> diesel::QueryResult<Result<(), Unmade>>
        + Send
        + 'static,
    ) -> Result<LoggedIn, LoginError> {
        let id = user.id;
        let success = Record::new(Event::LoginSuccess, Some(id), Some(&user.username), client);
        let started = self
            .core
            .sessions
            .start(
                id,
                challenge.remember,
                client.clone(),
                &[AuthMethod::Password, method],
                success,
                admit,
            )
            .await?;
        let session = match started {
            Ok(session) => session,
            Err(Unmade::Changed(Changed::Inactive)) => {
                self.refuse(
                    Event::LoginFailure,
                    Some(id),
                    &user.username,
                    client,
                    "inactive",
                )
                .await;
                return Err(LoginError::Inactive { user_id: id });
            }
            Err(Unmade::Changed(Changed::Gone | Changed::Credential)) => {
                login_outcome("mfa_expired");
                return Err(LoginError::MfaExpired);
            }
            Err(Unmade::Code(error)) => return Err(LoginError::Mfa(error)),
        };
        let used = match method {
            AuthMethod::RecoveryCode => Event::RecoveryCodeUsed,
            _ => Event::MfaSuccess,
        };
        audit::record(&self.core.pool, Record::new(used, Some(id), None, client)).await;
        login_outcome("success");
        let mut user = user;
        user.last_login_at = Some(session.created_at);
        Ok(LoggedIn {
            user,
            session,
            wanted: Wanted {
                remember: challenge.remember,
                next: challenge.next.clone(),
            },
        })
    }

    /// Starts answering the second step of `token`'s login with a passkey:
    /// request options limited to the account's passkeys. The token stays
    /// valid (a code may still answer it).
    pub async fn start_passkey_second_step(
        &self,
        token: &MfaToken,
        client: &Client,
    ) -> Result<Started, LoginError> {
        let digest = token.digest();
        let (ip, now) = (client.ip.map(Into::into), self.core.clock.now());
        let purpose = ChallengePurpose::Login;
        let challenge = db::run(&self.core.pool, move |conn| {
            second_factor::find_challenge(conn, &digest, purpose, ip, now)
        })
        .await?
        .ok_or(LoginError::MfaExpired)?;
        Ok(self
            .passkeys
            .start_second_factor(challenge.user_id, digest)
            .await?)
    }

    /// A login with a passkey alone: its user verification is a second
    /// factor of its own, so no password and no second step (`amr` is
    /// `passkey`, and `MFA_REQUIRED` is met). Refused passkeys count as
    /// failed logins of their account.
    #[tracing::instrument(skip_all)]
    pub async fn with_passkey(
        &self,
        challenge_id: CeremonyId,
        credential: &PublicKeyCredential,
        wanted: Wanted,
        client: &Client,
    ) -> Result<LoggedIn, LoginError> {
        let checked = match self
            .passkeys
            .check_login(&challenge_id, credential, client)
            .await
        {
            Ok(checked) => checked,
            Err(error) => {
                login_outcome(match error {
                    PasskeyError::Throttled(_) => "throttled",
                    _ => "passkey_failed",
                });
                return Err(error.into());
            }
        };
        let id = checked.user_id;
        let found = db::run(&self.core.pool, move |conn| users::find(conn, id)).await?;
        let Some(mut user) = found else {
            return Err(PasskeyError::Failed(Failure::UnknownCredential).into());
        };
        if !user.is_active {
            let error = LoginError::Inactive { user_id: id };
            self.refuse(
                Event::LoginFailure,
                Some(id),
                &user.username,
                client,
                "inactive",
            )
            .await;
            return Err(error);
        }
        if self.policy.require_verified_email && user.email_verified_at.is_none() {
            self.refuse(
                Event::LoginFailure,
                Some(id),
                &user.username,
                client,
                "unverified",
            )
            .await;
            let mailed = self.recovery.remail_on_refused_login(&user, client).await?;
            return Err(LoginError::Unverified { mailed });
        }
        // Made only if, with the account's row locked, it is still active
        // and still has the passkey: a removal or an operator's reset made
        // after the check (it updates that row) wins.
        let passkey = checked.passkey;
        let admit = move |conn: &mut PgConnection| {
            Ok(match users::lock_credential(conn, id)? {
                None => Err(Changed::Gone),
                Some(current) if !current.active => Err(Changed::Inactive),
                Some(_) if !passkeys::exists(conn, id, &passkey)? => Err(Changed::Credential),
                Some(_) => Ok(()),
            })
        };
        let success = Record::new(Event::LoginSuccess, Some(id), Some(&user.username), client);
        let started = self
            .core
            .sessions
            .start(
                id,
                wanted.remember,
                client.clone(),
                &[AuthMethod::Passkey],
                success,
                admit,
            )
            .await?;
        match started {
            Ok(session) => {
                login_outcome("success");
                user.last_login_at = Some(session.created_at);
                Ok(LoggedIn {
                    user,
                    session,
                    wanted,
                })
            }
            Err(Changed::Inactive) => {
                self.refuse(
                    Event::LoginFailure,
                    Some(id),
                    &user.username,
                    client,
                    "inactive",
                )
                .await;
                Err(LoginError::Inactive { user_id: id })
            }
            Err(Changed::Gone | Changed::Credential) => {
                Err(PasskeyError::Failed(Failure::UnknownCredential).into())
            }
        }
    }

    /// Counts and audits a refused login.
    async fn refuse(
        &self,
        kind: Event,
        user_id: Option<UserId>,
        identifier: &str,
        client: &Client,
        outcome: &'static str,
    ) {
        login_outcome(outcome);
        let event = Record::new(kind, user_id, Some(identifier), client);
        audit::record(&self.core.pool, event).await;
    }

    /// The password hashed at the configured cost, to replace `user`'s
    /// older, cheaper hash; best effort: a failure is logged and the
    /// upgrade tried at the next login.
    async fn upgraded_hash(&self, user: &User, password: SecretString) -> Option<PasswordHash> {
        match self.core.hasher.rehash(password).await {
            Ok(hash) => Some(hash),
            Err(error) => {
                tracing::warn!(user_id = %user.id, %error, "could not re-hash a password");
                None
            }
        }
    }
}

/// How one check of the password ended.
enum Attempted {
    LoggedIn(User, Box<Session>),
    Refused(LoginError),
    /// The password matched, but the account's hash (or its second factor)
    /// changed before the session was made: the password is checked again,
    /// against the account as it is now.
    CredentialChanged {
        user_id: UserId,
    },
}

/// What changed about an account between its password check and its
/// session.
enum Changed {
    Gone,
    Inactive,
    /// Its hash, or whether it has a second factor.
    Credential,
}

/// Why a second step made no session.
enum Unmade {
    Changed(Changed),
    /// The code that was to turn the factor on (`MFA_REQUIRED`).
    Code(MfaError),
}

/// Locks the account's row and checks it is as the password found it:
/// active, with the hash that was checked, and with a second factor or
/// without one as `second_factor` says.
fn still_as_checked(
    conn: &mut PgConnection,
    id: UserId,
    checked: &PasswordHash,
    second_factor: bool,
) -> diesel::QueryResult<Result<(), Changed>> {
    Ok(match users::lock_credential(conn, id)? {
        None => Err(Changed::Gone),
        Some(current) if !current.active => Err(Changed::Inactive),
        Some(current) if current.hash != *checked || current.second_factor != second_factor => {
            Err(Changed::Credential)
        }
        Some(_) => Ok(()),
    })
}

/// Every outcome `authd_logins_total` counts, each shown at zero on
/// `/metrics` from start-up: the one list, which `login_outcome` checks
/// (in debug builds) and the metrics test and the README's table follow.
pub const LOGIN_OUTCOMES: &[&str] = &[
    "success",
    "failure",
    "throttled",
    "inactive",
    "unverified",
    "mfa_required",
    "mfa_enrollment_required",
    "mfa_expired",
    "mfa_failure",
    "passkey_failed",
];

fn login_outcome(outcome: &'static str) {
    debug_assert!(
        LOGIN_OUTCOMES.contains(&outcome),
        "login outcome {outcome:?} is not in LOGIN_OUTCOMES"
    );
    metrics::counter!("authd_logins_total", "outcome" => outcome).increment(1);
}
