-- Who may be told what, learnt from accounts' `account.upserted` and `account.removed`
-- events (no name, no address: an address is asked of accounts at send time). One row
-- per agent with the latest snapshot's sequence, and the memberships in force.
CREATE TABLE notify.agents (
    account_id        uuid PRIMARY KEY,
    -- The kinds of message the agent chose, slug -> immediate | daily | never; the
    -- others take their default (contracts::MessageKind::default_mode).
    preferences       jsonb NOT NULL DEFAULT '{}',
    last_signed_in_at timestamptz,
    removed           boolean NOT NULL DEFAULT false,
    sequence          bigint NOT NULL
);

CREATE TABLE notify.memberships (
    membership_id   uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES notify.agents (account_id) ON DELETE CASCADE,
    role            text NOT NULL,
    organisation_id uuid,
    structure_id    text,
    territories     text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX notify_memberships_of_account ON notify.memberships (account_id);
CREATE INDEX notify_mediators ON notify.memberships (structure_id) WHERE role = 'mediator';
CREATE INDEX notify_referrers ON notify.memberships (organisation_id) WHERE role = 'referrer';
CREATE INDEX notify_coordinators ON notify.memberships USING gin (territories) WHERE role = 'coordinator';
