// Kept to the types diesel's MultiConnection carries on both backends.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        username_key -> Text,
        password_hash -> Text,
        two_factor_enabled -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    pending_tokens (jti) {
        jti -> Text,
        user_id -> Text,
        failed_attempts -> Integer,
        consumed_at -> Nullable<Timestamp>,
        expires_at -> Timestamp,
        known_device -> Bool,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        amr -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    auth_events (id) {
        id -> BigInt,
        user_id -> Text,
        event_type -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(pending_tokens -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(auth_events -> users (user_id));

diesel::table! {
    recovery_codes (id) {
        id -> BigInt,
        user_id -> Text,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        expires_at -> Timestamp,
        rotated_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));

diesel::table! {
    failure_counters (key) {
        key -> Text,
        failures -> Integer,
        last_failure_at -> BigInt,
        locked_until -> BigInt,
        lockouts -> Integer,
        window_start -> BigInt,
        window_failures -> Integer,
        previous_window_failures -> Integer,
    }
}

diesel::table! {
    device_tokens (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    check_claims (key) {
        key -> Text,
        held_until -> BigInt,
    }
}

diesel::joinable!(device_tokens -> users (user_id));

diesel::table! {
    rate_buckets (key) {
        key -> Text,
        tokens -> Double,
        refilled_at -> Double,
    }
}

diesel::table! {
    authenticators (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        totp_secret -> Binary,
        totp_key_id -> Text,
        last_step -> Nullable<BigInt>,
        confirmed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(authenticators -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    pending_tokens,
    sessions,
    auth_events,
    recovery_codes,
    refresh_tokens,
    failure_counters,
    rate_buckets,
    device_tokens,
    check_claims,
    authenticators,
);
