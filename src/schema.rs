// @generated automatically by Diesel CLI.

diesel::table! {
    auth_events (id) {
        id -> Int8,
        at -> Timestamptz,
        event -> Text,
        user_id -> Nullable<Int8>,
        identifier -> Nullable<Text>,
        ip -> Nullable<Inet>,
        user_agent -> Nullable<Text>,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    data_migrations (name) {
        name -> Text,
        applied_at -> Timestamptz,
    }
}

diesel::table! {
    email_tokens (token_hash) {
        token_hash -> Bytea,
        user_id -> Int8,
        purpose -> Text,
        email -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        requested_by -> Nullable<Text>,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> Int8,
        kind -> Text,
        user_id -> Nullable<Int8>,
        address -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        requested_by -> Nullable<Text>,
    }
}

diesel::table! {
    mfa_challenges (token_hash) {
        token_hash -> Bytea,
        user_id -> Int8,
        purpose -> Text,
        remember -> Bool,
        next -> Text,
        ip -> Nullable<Inet>,
        failures -> Int4,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    passkey_ceremonies (id_hash) {
        id_hash -> Bytea,
        purpose -> Text,
        user_id -> Nullable<Int8>,
        session_id -> Nullable<Text>,
        mfa_token_hash -> Nullable<Bytea>,
        state -> Jsonb,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    passkey_handles (user_id) {
        user_id -> Int8,
        handle -> Uuid,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Int8,
        credential_id -> Bytea,
        name -> Text,
        credential -> Jsonb,
        sign_count -> Int8,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    recovery_codes (user_id, digest) {
        user_id -> Int8,
        digest -> Bytea,
        used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Int8,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        remember -> Bool,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Inet>,
        csrf_token -> Text,
        revoked_at -> Nullable<Timestamptz>,
        public_id -> Text,
        amr -> Array<Nullable<Text>>,
    }
}

diesel::table! {
    shared_secrets (name) {
        name -> Text,
        value -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    throttle_hits (id) {
        id -> Int8,
        bucket -> Text,
        key -> Text,
        at -> Timestamptz,
        pending -> Bool,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Int8,
        secret -> Bytea,
        confirmed_at -> Nullable<Timestamptz>,
        last_step -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        email -> Text,
        password_hash -> Text,
        is_active -> Bool,
        created_at -> Timestamptz,
        last_login_at -> Nullable<Timestamptz>,
        email_verified_at -> Nullable<Timestamptz>,
        totp_enabled -> Bool,
        recovery_codes_left -> Int4,
        passkey_count -> Int4,
    }
}

diesel::joinable!(auth_events -> users (user_id));
diesel::joinable!(email_tokens -> users (user_id));
diesel::joinable!(mfa_challenges -> users (user_id));
diesel::joinable!(passkey_ceremonies -> users (user_id));
diesel::joinable!(passkey_handles -> users (user_id));
diesel::joinable!(passkeys -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(totp_factors -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    auth_events,
    data_migrations,
    email_tokens,
    mail_outbox,
    mfa_challenges,
    passkey_ceremonies,
    passkey_handles,
    passkeys,
    recovery_codes,
    sessions,
    shared_secrets,
    throttle_hits,
    totp_factors,
    users,
);
