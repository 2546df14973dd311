-- The part of a Supabase project's database that `velro import supabase` reads: the `auth`
-- schema as GoTrue's migrations leave it today (tables and columns an importer touches, plus the
-- neighbours whose shape matters), and an application table of profiles. Written for Velro's
-- tests from reading those migrations; it is not GoTrue's DDL.
--
-- What makes it faithful where importers trip:
-- * every table belongs to supabase_auth_admin and has row-level security on with no policy,
--   so any other role without BYPASSRLS sees zero rows, silently;
-- * users.confirmed_at is generated from the email and phone confirmation times;
-- * GoTrue writes '' into the token columns, SQL-inserted rows often leave NULL there;
-- * refresh_tokens.user_id is text, token is the plaintext, parent names the predecessor's token
--   (no foreign key since late 2022), and newer sessions keep their refresh state on
--   sessions.refresh_token_hmac_key / refresh_token_counter instead.

DO $roles$
BEGIN
    CREATE ROLE supabase_auth_admin NOLOGIN NOINHERIT;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$roles$;

CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;

CREATE TYPE auth.aal_level AS ENUM ('aal1', 'aal2', 'aal3');

CREATE TABLE auth.users (
    instance_id                 uuid,
    id                          uuid         NOT NULL,
    aud                         varchar(255),
    role                        varchar(255),
    email                       varchar(255),
    encrypted_password          varchar(255),
    email_confirmed_at          timestamptz,
    invited_at                  timestamptz,
    confirmation_token          varchar(255),
    confirmation_sent_at        timestamptz,
    recovery_token              varchar(255),
    recovery_sent_at            timestamptz,
    email_change_token_new      varchar(255),
    email_change                varchar(255),
    email_change_sent_at        timestamptz,
    last_sign_in_at             timestamptz,
    raw_app_meta_data           jsonb,
    raw_user_meta_data          jsonb,
    is_super_admin              boolean,
    created_at                  timestamptz,
    updated_at                  timestamptz,
    phone                       text         DEFAULT NULL,
    phone_confirmed_at          timestamptz  DEFAULT NULL,
    phone_change                text         DEFAULT '',
    phone_change_token          varchar(255) DEFAULT '',
    phone_change_sent_at        timestamptz  DEFAULT NULL,
    confirmed_at                timestamptz  GENERATED ALWAYS AS
                                    (LEAST(email_confirmed_at, phone_confirmed_at)) STORED,
    email_change_token_current  varchar(255) DEFAULT '',
    email_change_confirm_status smallint     DEFAULT 0
                                    CHECK (email_change_confirm_status BETWEEN 0 AND 2),
    banned_until                timestamptz,
    reauthentication_token      varchar(255) DEFAULT '',
    reauthentication_sent_at    timestamptz  DEFAULT NULL,
    is_sso_user                 boolean      NOT NULL DEFAULT false,
    deleted_at                  timestamptz,
    is_anonymous                boolean      NOT NULL DEFAULT false,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_phone_key UNIQUE (phone)
);

CREATE UNIQUE INDEX users_email_partial_key ON auth.users (email) WHERE is_sso_user = false;
CREATE INDEX users_instance_id_idx ON auth.users (instance_id);
CREATE INDEX users_is_anonymous_idx ON auth.users (is_anonymous);

CREATE TABLE auth.identities (
    provider_id     text        NOT NULL,
    user_id         uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    identity_data   jsonb       NOT NULL,
    provider        text        NOT NULL,
    last_sign_in_at timestamptz,
    created_at      timestamptz,
    updated_at      timestamptz,
    email           text        GENERATED ALWAYS AS (lower(identity_data ->> 'email')) STORED,
    id              uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    CONSTRAINT identities_provider_id_provider_unique UNIQUE (provider_id, provider)
);

CREATE INDEX identities_user_id_idx ON auth.identities (user_id);

CREATE TABLE auth.sessions (
    id                     uuid        NOT NULL PRIMARY KEY,
    user_id                uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    created_at             timestamptz,
    updated_at             timestamptz,
    factor_id              uuid,
    aal                    auth.aal_level,
    not_after              timestamptz,
    -- Without a time zone, as GoTrue has it: UTC by convention.
    refreshed_at           timestamp,
    user_agent             text,
    ip                     inet,
    tag                    text,
    oauth_client_id        uuid,
    scopes                 text CHECK (char_length(scopes) <= 4096),
    refresh_token_hmac_key text,
    refresh_token_counter  bigint
);

CREATE INDEX sessions_user_id_idx ON auth.sessions (user_id);

CREATE TABLE auth.refresh_tokens (
    instance_id uuid,
    id          bigserial    NOT NULL PRIMARY KEY,
    token       varchar(255),
    user_id     varchar(255),
    revoked     boolean,
    created_at  timestamptz,
    updated_at  timestamptz,
    parent      varchar(255),
    session_id  uuid REFERENCES auth.sessions (id) ON DELETE CASCADE,
    CONSTRAINT refresh_tokens_token_unique UNIQUE (token)
);

CREATE INDEX refresh_tokens_parent_idx ON auth.refresh_tokens (parent);
CREATE INDEX refresh_tokens_session_id_revoked_idx ON auth.refresh_tokens (session_id, revoked);

CREATE TABLE auth.mfa_amr_claims (
    id                    uuid        NOT NULL PRIMARY KEY,
    session_id            uuid        NOT NULL REFERENCES auth.sessions (id) ON DELETE CASCADE,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    authentication_method text        NOT NULL,
    CONSTRAINT mfa_amr_claims_session_id_authentication_method_pkey
        UNIQUE (session_id, authentication_method)
);

ALTER TABLE auth.users OWNER TO supabase_auth_admin;
ALTER TABLE auth.identities OWNER TO supabase_auth_admin;
ALTER TABLE auth.sessions OWNER TO supabase_auth_admin;
ALTER TABLE auth.refresh_tokens OWNER TO supabase_auth_admin;
ALTER TABLE auth.mfa_amr_claims OWNER TO supabase_auth_admin;
ALTER TYPE auth.aal_level OWNER TO supabase_auth_admin;

ALTER TABLE auth.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.mfa_amr_claims ENABLE ROW LEVEL SECURITY;

-- The application's own table, as Supabase's guides suggest: one row per user, keyed by its id.
CREATE TABLE public.profiles (
    id         uuid   NOT NULL PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    full_name  text,
    avatar_url text,
    role       text,
    credits    bigint
);
