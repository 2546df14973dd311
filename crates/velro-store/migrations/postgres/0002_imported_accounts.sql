-- What `velro import` carries over from another auth server (Supabase's auth.users), and what
-- the Supabase-compatible surface can show: confirmation and sign-in times, a timed ban, and
-- the two metadata objects (JSON text).

ALTER TABLE users ADD COLUMN email_confirmed_at timestamptz;
ALTER TABLE users ADD COLUMN last_sign_in_at timestamptz;
ALTER TABLE users ADD COLUMN banned_until timestamptz;
ALTER TABLE users ADD COLUMN user_metadata text;
ALTER TABLE users ADD COLUMN app_metadata text;

-- A refresh token the other server issued and spent: presenting it again is reuse, as for our
-- own, but its successor was chosen at random over there and cannot be derived here, so a
-- replay within the grace window is refused instead of answered.
ALTER TABLE refresh_tokens ADD COLUMN spent_elsewhere boolean NOT NULL DEFAULT false;

-- Sessions carried over by an import: a later import revokes those the other server no longer
-- has (signed out there), and never touches sessions that began here.
ALTER TABLE sessions ADD COLUMN imported boolean NOT NULL DEFAULT false;
