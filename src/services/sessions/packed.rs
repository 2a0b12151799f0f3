//! A live session as the session cache keeps it: the same facts as
//! [`LiveSession`], in about half the memory. A `LiveSession` is nine
//! allocations (each string its own, the whole behind an `Arc`), which cost
//! 800 bytes a session in the allocator; packed, every string shares one,
//! and the cache's default 250,000 sessions take about 117 MiB (the
//! README's sizing guide has the measured figure). Unpacking on each hit
//! costs a few small allocations, far less than the request around it.
//!
//! The credential itself is not kept: the cache finds an entry by its
//! digest, so whoever asks has presented it and hands it back to
//! [`Packed::unpack`]. Memory read out of the process (a core dump, a swap
//! file) then holds no session anyone could use. Nor is `last_seen_at`:
//! the cache's entry keeps it beside the packed session, where noting
//! activity updates it in place, and hands it to [`Packed::unpack`] too.
//!
//! Both directions name every field, so a field added to [`Session`] or
//! [`User`] does not compile until it is kept here too.

use chrono::{DateTime, Utc};

use crate::db::sessions::Session;
use crate::db::users::User;
use crate::domain::{CsrfToken, PasswordHash, SessionId, SessionToken, UserId};
use crate::services::sessions::live::LiveSession;

/// How many strings `text` holds before the methods.
const STRINGS: usize = 5;

pub(super) struct Packed {
    /// The CSRF token, the public id, the username, the address and the
    /// password hash, end to end, then the methods, each after a space.
    text: Box<str>,
    /// Where each of the first [`STRINGS`] ends in `text`.
    ends: [u16; STRINGS],
    pub(super) user_id: UserId,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    email_verified_at: Option<DateTime<Utc>>,
    recovery_codes_left: i32,
    passkey_count: i32,
    remember: bool,
    is_active: bool,
    totp_enabled: bool,
}

impl Packed {
    /// `None` for what cannot be packed: a string longer than 64 KiB (no
    /// column the database checks allows one), a method with a space in
    /// it, or a user that is not the session's (the database's join never
    /// makes one). Such a session is then not cached, which costs only
    /// speed.
    pub(super) fn pack(live: &LiveSession) -> Option<Self> {
        let LiveSession {
            session:
                Session {
                    // What the cache is keyed by, not what it keeps.
                    token: _,
                    user_id,
                    created_at,
                    // Kept beside the packed session, where a touch
                    // updates it in place (see `SessionCache::touch`).
                    last_seen_at: _,
                    expires_at,
                    remember,
                    csrf_token,
                    id,
                    amr,
                },
            user:
                User {
                    id: owner,
                    username,
                    email,
                    password_hash,
                    is_active,
                    created_at: user_created_at,
                    last_login_at,
                    email_verified_at,
                    totp_enabled,
                    recovery_codes_left,
                    passkey_count,
                },
        } = live;
        if owner != user_id {
            return None;
        }
        let strings = [
            csrf_token.expose(),
            id.as_str(),
            username,
            email,
            password_hash.expose(),
        ];
        let methods: Vec<&str> = amr
            .iter()
            .map(|method| method.as_deref())
            .collect::<Option<_>>()?;
        let mut text = String::with_capacity(
            strings.iter().map(|s| s.len()).sum::<usize>()
                + methods.iter().map(|m| m.len() + 1).sum::<usize>(),
        );
        let mut ends = [0; STRINGS];
        for (end, string) in ends.iter_mut().zip(strings) {
            text.push_str(string);
            *end = u16::try_from(text.len()).ok()?;
        }
        for method in methods {
            if method.contains(' ') {
                return None;
            }
            text.push(' ');
            text.push_str(method);
        }
        Some(Self {
            text: text.into_boxed_str(),
            ends,
            user_id: *user_id,
            created_at: *created_at,
            expires_at: *expires_at,
            user_created_at: *user_created_at,
            last_login_at: *last_login_at,
            email_verified_at: *email_verified_at,
            recovery_codes_left: *recovery_codes_left,
            passkey_count: *passkey_count,
            remember: *remember,
            is_active: *is_active,
            totp_enabled: *totp_enabled,
        })
    }

    /// The live session that was packed, `token` being the credential it
    /// was found by, last seen at `last_seen_at`.
    pub(super) fn unpack(
        &self,
        token: &SessionToken,
        last_seen_at: DateTime<Utc>,
    ) -> Option<LiveSession> {
        let string = |index: usize| {
            let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
            &self.text[usize::from(start)..usize::from(self.ends[index])]
        };
        let methods = &self.text[usize::from(self.ends[STRINGS - 1])..];
        Some(LiveSession {
            session: Session {
                token: token.clone(),
                user_id: self.user_id,
                created_at: self.created_at,
                last_seen_at,
                expires_at: self.expires_at,
                remember: self.remember,
                csrf_token: CsrfToken::stored(string(0).to_owned()),
                id: SessionId::parse(string(1))?,
                amr: methods
                    .split(' ')
                    .skip(1)
                    .map(|method| Some(method.to_owned()))
                    .collect(),
            },
            user: User {
                id: self.user_id,
                username: string(2).to_owned(),
                email: string(3).to_owned(),
                password_hash: PasswordHash::new(string(4).to_owned()),
                is_active: self.is_active,
                created_at: self.user_created_at,
                last_login_at: self.last_login_at,
                email_verified_at: self.email_verified_at,
                totp_enabled: self.totp_enabled,
                recovery_codes_left: self.recovery_codes_left,
                passkey_count: self.passkey_count,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LiveSession {
        let now = Utc::now();
        let mut session = Session::sample(UserId::new(42), SessionToken::generate());
        session.amr = vec![Some("pwd".into()), Some("otp".into())];
        session.remember = true;
        LiveSession {
            session,
            user: User {
                id: UserId::new(42),
                username: "Zoë".into(),
                email: "zoe@example.com".into(),
                password_hash: PasswordHash::new("$2b$04$hash".into()),
                is_active: true,
                created_at: now - chrono::TimeDelta::days(3),
                last_login_at: Some(now),
                email_verified_at: None,
                totp_enabled: true,
                recovery_codes_left: 7,
                passkey_count: 2,
            },
        }
    }

    /// Every field comes back as it went in. Neither type compares whole
    /// (their secrets have no `PartialEq` on purpose), so each is compared.
    #[test]
    fn unpacking_gives_back_what_was_packed() {
        let live = sample();
        let back = Packed::pack(&live)
            .unwrap()
            .unpack(&live.session.token, live.session.last_seen_at)
            .unwrap();
        let (a, b) = (&live.session, &back.session);
        assert_eq!(a.token.expose(), b.token.expose());
        assert_eq!(a.csrf_token.expose(), b.csrf_token.expose());
        assert_eq!(
            (
                a.user_id,
                a.created_at,
                a.last_seen_at,
                a.expires_at,
                a.remember,
                &a.id,
                &a.amr
            ),
            (
                b.user_id,
                b.created_at,
                b.last_seen_at,
                b.expires_at,
                b.remember,
                &b.id,
                &b.amr
            ),
        );
        let (a, b) = (&live.user, &back.user);
        assert_eq!(a.password_hash.expose(), b.password_hash.expose());
        assert_eq!(
            (
                a.id,
                &a.username,
                &a.email,
                a.is_active,
                a.created_at,
                a.last_login_at
            ),
            (
                b.id,
                &b.username,
                &b.email,
                b.is_active,
                b.created_at,
                b.last_login_at
            ),
        );
        assert_eq!(
            (
                a.email_verified_at,
                a.totp_enabled,
                a.recovery_codes_left,
                a.passkey_count
            ),
            (
                b.email_verified_at,
                b.totp_enabled,
                b.recovery_codes_left,
                b.passkey_count
            ),
        );
    }

    #[test]
    fn the_credential_is_not_kept() {
        let live = sample();
        let packed = Packed::pack(&live).unwrap();
        assert!(!packed.text.contains(live.session.token.expose()));
    }

    #[test]
    fn no_methods_and_an_empty_one_survive() {
        let mut live = sample();
        live.session.amr = vec![];
        let back = Packed::pack(&live)
            .unwrap()
            .unpack(&live.session.token, live.session.last_seen_at)
            .unwrap();
        assert!(back.session.amr.is_empty());
        live.session.amr = vec![Some(String::new()), Some("pwd".into())];
        let back = Packed::pack(&live)
            .unwrap()
            .unpack(&live.session.token, live.session.last_seen_at)
            .unwrap();
        assert_eq!(back.session.amr, live.session.amr);
    }

    #[test]
    fn what_cannot_be_packed_is_not() {
        let mut live = sample();
        live.session.amr = vec![Some("two words".into())];
        assert!(Packed::pack(&live).is_none());
        live.session.amr = vec![None];
        assert!(Packed::pack(&live).is_none());
        let mut live = sample();
        live.user.email = "a".repeat(70_000);
        assert!(Packed::pack(&live).is_none());
        let mut live = sample();
        live.user.id = UserId::new(43);
        assert!(Packed::pack(&live).is_none());
    }
}
