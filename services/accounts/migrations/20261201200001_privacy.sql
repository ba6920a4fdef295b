-- Privacy by design (issue 15): agents' names and e-mail addresses are sealed by the
-- application (platform::vault, XChaCha20-Poly1305 under data keys kept in
-- accounts.data_keys, wrapped by the master key). Each value is bound to its place,
-- `accounts.<column>:<id>` or `invitations.email:<id>`, and each row names the data key
-- that sealed it (key_id). A row whose key_id is NULL holds the plain UTF-8 text of a
-- database migrated from before this change; the service seals such rows when it starts.
--
-- email_key becomes a blind index (a keyed hash of the lower-cased address, under the
-- schema's blind-index key): invitations are matched to a sign-in by it, never by the
-- address.
ALTER TABLE accounts.accounts
    ALTER COLUMN given_name TYPE bytea USING convert_to(given_name, 'UTF8'),
    ALTER COLUMN usual_name TYPE bytea USING convert_to(usual_name, 'UTF8'),
    ALTER COLUMN email TYPE bytea USING convert_to(email, 'UTF8'),
    ALTER COLUMN email_key TYPE bytea USING convert_to(email_key, 'UTF8'),
    -- A purged account (no sign-in for the account retention) keeps no address.
    ALTER COLUMN email DROP NOT NULL,
    ALTER COLUMN email_key DROP NOT NULL,
    ADD COLUMN key_id integer,
    -- When the retention purge emptied the account (then no name, address, SIRET or
    -- identity remains: a later sign-in makes a new account).
    ADD COLUMN purged_at timestamptz;

ALTER TABLE accounts.invitations
    ALTER COLUMN email TYPE bytea USING convert_to(email, 'UTF8'),
    ALTER COLUMN email_key TYPE bytea USING convert_to(email_key, 'UTF8'),
    ADD COLUMN key_id integer;

-- The account purge walks accounts by last sign-in.
CREATE INDEX accounts_by_last_sign_in ON accounts.accounts ((COALESCE(last_sign_in_at, created_at)), id)
    WHERE purged_at IS NULL;

-- Durable daily jobs: the last run of each, so that one replica runs it once a day.
CREATE TABLE accounts.jobs (
    name        text PRIMARY KEY,
    last_run_at timestamptz
);
