-- The key that signs bearer tokens when AIGUILLAGE_TOKEN_SECRET is not set.
CREATE TABLE IF NOT EXISTS platform.signing_key (
    id         integer PRIMARY KEY CHECK (id = 1),
    secret     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
