-- The matcher's read model of structures, each open referral's matching profile (no
-- personal data), and the capacity ledger.

-- A clock that every change to structures bumps, inside its transaction. Its row lock
-- makes versions follow commit order, so "every change after version N" is exact.
CREATE TABLE matcher.structure_clock (
    id    integer PRIMARY KEY CHECK (id = 1),
    value bigint NOT NULL
);
INSERT INTO matcher.structure_clock VALUES (1, 0);

CREATE TABLE matcher.structures (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    territory       text NOT NULL,
    lat             double precision NOT NULL,
    lon             double precision NOT NULL,
    services        text[] NOT NULL,
    modes           text[] NOT NULL,
    languages       text[] NOT NULL,
    other_languages boolean NOT NULL,
    accessibility   text[] NOT NULL,
    opening_hours   text,
    weekly_capacity integer NOT NULL,
    accepting       boolean NOT NULL,
    removed         boolean NOT NULL DEFAULT false,
    -- The directory's change time: older events never overwrite newer ones.
    source_sequence bigint NOT NULL,
    -- Bumped on every change, so each process can refresh its in-memory index.
    version         bigint NOT NULL
);
CREATE INDEX structures_version ON matcher.structures (version);

CREATE TABLE matcher.profiles (
    referral_id     uuid PRIMARY KEY,
    -- matching | proposed | waitlisted | accepted | closed | cancelled
    state           text NOT NULL,
    organisation_id uuid,
    commune_code    text,
    territory       text,
    lat             double precision,
    lon             double precision,
    needs           text[],
    modes           text[],
    languages       text[],
    accessibility   text[],
    urgency         text,
    deadline        date,
    max_distance_km double precision,
    submitted_at    timestamptz,
    -- Offers made since the last reroute; escalation compares it to the maximum.
    attempts        integer NOT NULL DEFAULT 0,
    -- Structures already tried, with what happened there.
    tried           jsonb NOT NULL DEFAULT '{}',
    round           integer NOT NULL DEFAULT 0,
    current_structure   text,
    current_reservation uuid,
    waitlist_reason text,
    escalated       boolean NOT NULL DEFAULT false,
    waitlisted_at   timestamptz,
    -- Sequence of the match.* events of this referral.
    sequence        bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX profiles_waitlist ON matcher.profiles (submitted_at) WHERE state = 'waitlisted';

-- Capacity used per structure and ISO week (Europe/Paris): reserved plus consumed.
CREATE TABLE matcher.capacity_usage (
    structure_id text NOT NULL,
    week         text NOT NULL,
    used         integer NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (structure_id, week)
);

CREATE TABLE matcher.reservations (
    id           uuid PRIMARY KEY,
    referral_id  uuid NOT NULL,
    structure_id text NOT NULL,
    week         text NOT NULL,
    -- held | consumed | released
    state        text NOT NULL,
    forced       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    settled_at   timestamptz
);
CREATE INDEX reservations_referral ON matcher.reservations (referral_id);
CREATE INDEX reservations_held ON matcher.reservations (structure_id, week) WHERE state = 'held';

-- Small facts the matcher keeps about itself (the last week whose rollover ran).
CREATE TABLE matcher.facts (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- Structures whose capacity may have grown: the waitlist worker re-matches waiting
-- referrals against them after the change committed. '*' means every structure.
CREATE TABLE matcher.pending_rematch (
    id           bigserial PRIMARY KEY,
    structure_id text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
