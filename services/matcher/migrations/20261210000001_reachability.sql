-- Who can answer an offer (issue 23): a structure is offered only when an active mediator
-- or its public e-mail address would see it.

-- The directory's public contact of each structure (institutional, never a person's).
-- `contact_known` is false for the rows from before: the directory has not announced them
-- since, so their address is unknown, and they are offered as before until it does.
ALTER TABLE matcher.structures
    ADD COLUMN contact_known boolean NOT NULL DEFAULT false,
    ADD COLUMN contact_email text,
    ADD COLUMN contact_phone text,
    -- The directory's change time of the record that set the current address: a bounce
    -- reported for an offer made before it is about an earlier address.
    ADD COLUMN email_set_at timestamptz,
    -- The address refused an offer's e-mail for good (`referral.declined` with reason
    -- `structure_unreachable`). Cleared by a new address, or an active mediator.
    ADD COLUMN unreachable_since timestamptz,
    -- Whether someone there would see an offer now, as last computed: the in-memory
    -- index reads it. Each flip bumps `version`, so every process reloads the structure.
    ADD COLUMN reachable boolean NOT NULL DEFAULT true;

-- Accounts as `account.*` announced them: the newest announcement wins.
CREATE TABLE matcher.accounts (
    account_id uuid PRIMARY KEY,
    sequence   bigint NOT NULL
);

-- Mediator memberships in force, with their account's last sign-in.
CREATE TABLE matcher.mediators (
    account_id        uuid NOT NULL,
    structure_id      text NOT NULL,
    last_signed_in_at timestamptz,
    PRIMARY KEY (account_id, structure_id)
);
CREATE INDEX mediators_structure ON matcher.mediators (structure_id, last_signed_in_at);
