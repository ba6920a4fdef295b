-- Privacy by design (issue 15).
--
-- Personal fields are sealed by the application (platform::vault, XChaCha20-Poly1305
-- under data keys kept in referrals.data_keys, wrapped by the master key): they are
-- bytea, and each row names the data key that sealed it (key_id). A row whose key_id is
-- NULL holds the plain UTF-8 text of a database migrated from before this change; the
-- service seals such rows when it starts.
ALTER TABLE referrals.persons
    ALTER COLUMN first_name TYPE bytea USING convert_to(first_name, 'UTF8'),
    ALTER COLUMN last_name TYPE bytea USING convert_to(last_name, 'UTF8'),
    ALTER COLUMN phone TYPE bytea USING convert_to(phone, 'UTF8'),
    ALTER COLUMN email TYPE bytea USING convert_to(email, 'UTF8'),
    ALTER COLUMN note TYPE bytea USING convert_to(note, 'UTF8'),
    ADD COLUMN key_id integer,
    -- Blind indexes (keyed hashes) of the phone number and the e-mail address: duplicate
    -- detection compares these, never the values.
    ADD COLUMN phone_key bytea,
    ADD COLUMN email_key bytea;
CREATE INDEX persons_by_phone_key ON referrals.persons (phone_key) WHERE phone_key IS NOT NULL;
CREATE INDEX persons_by_email_key ON referrals.persons (email_key) WHERE email_key IS NOT NULL;

-- Free text written by people (decline and close comments, cancel and reroute reasons,
-- the accepting mediator's name).
ALTER TABLE referrals.history
    ALTER COLUMN comment TYPE bytea USING convert_to(comment, 'UTF8'),
    ADD COLUMN key_id integer;

-- Referrals whose personal data is gone: the persons row is deleted, history comments
-- are cleared, and this row says why and when (month-level). No identity remains: the
-- referral keeps its id, its facts (needs, commune, statuses) and its timeline.
CREATE TABLE referrals.erasures (
    referral_id uuid PRIMARY KEY REFERENCES referrals.referrals (id),
    -- purged (retention) | erased (the person's request, GDPR art. 17)
    kind        text NOT NULL,
    -- The first day of the month it happened.
    month       date NOT NULL
);

-- The retention purge walks referrals by last activity.
CREATE INDEX referrals_by_activity ON referrals.referrals (updated_at, id);

-- Durable daily jobs: the last run of each, so that one replica runs it once a day.
CREATE TABLE referrals.jobs (
    name        text PRIMARY KEY,
    last_run_at timestamptz
);

-- Who read, exported or changed a person's data: the account or token (with its role
-- and scope), the active membership, which referral, what, when. No personal value.
-- Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE for every role, and
-- deploy/postgres/roles.sql gives the service's role INSERT and SELECT only.
CREATE TABLE referrals.audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    -- Caller::actor(): role, scope and who (account:… or token:…).
    actor       text NOT NULL,
    -- account:<uuid> or token:<uuid>: what the `agent` filter matches.
    principal   text NOT NULL,
    membership  uuid,
    action      text NOT NULL,
    referral_id uuid
);
CREATE INDEX audit_by_referral ON referrals.audit (referral_id, id);
CREATE INDEX audit_by_principal ON referrals.audit (principal, id);
CREATE INDEX audit_by_time ON referrals.audit (at, id);

CREATE FUNCTION referrals.audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'referrals.audit is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON referrals.audit
    FOR EACH ROW EXECUTE FUNCTION referrals.audit_is_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON referrals.audit
    FOR EACH STATEMENT EXECUTE FUNCTION referrals.audit_is_append_only();
-- Default privileges (deploy/postgres/roles.sql) would give the service's role UPDATE
-- and DELETE on a new table: not on this one.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aiguillage_referrals') THEN
        REVOKE UPDATE, DELETE, TRUNCATE ON referrals.audit FROM aiguillage_referrals;
    END IF;
END
$$;
