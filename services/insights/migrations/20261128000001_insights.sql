-- Facts derived from events: one row per referral (milestones, hops, outcome, territory),
-- one row per offer-related event, and the structures and organisations they refer to.
-- No personal data reaches this schema.

CREATE TABLE insights.referrals (
    referral_id        uuid PRIMARY KEY,
    organisation_id    uuid,
    territory          text,
    commune_code       text,
    needs              text[],
    urgency            text,
    submitted_at       timestamptz,
    -- The status set by the newest event applied (by the referral's event sequence).
    status             text NOT NULL DEFAULT 'submitted',
    status_sequence    bigint NOT NULL DEFAULT 0,
    status_at          timestamptz,
    first_offered_at   timestamptz,
    accepted_at        timestamptz,
    first_contact_at   timestamptz,
    closed_at          timestamptz,
    cancelled_at       timestamptz,
    outcome            text,
    offers             integer NOT NULL DEFAULT 0,
    declines           integer NOT NULL DEFAULT 0,
    expiries           integer NOT NULL DEFAULT 0,
    current_structure  text,
    current_offer_at   timestamptz,
    accepted_structure text,
    waitlist_reason    text,
    escalated          boolean NOT NULL DEFAULT false,
    waitlisted_at      timestamptz
);
CREATE INDEX insights_referrals_territory ON insights.referrals (territory, submitted_at);
CREATE INDEX insights_referrals_offered ON insights.referrals (current_structure) WHERE status = 'offered';
CREATE INDEX insights_referrals_accepted ON insights.referrals (accepted_structure);

-- Offers, declines, expiries, acceptances, contacts, closures, reroutes: one row each.
CREATE TABLE insights.events (
    event_id     uuid PRIMARY KEY,
    referral_id  uuid NOT NULL,
    kind         text NOT NULL,
    structure_id text,
    reason       text,
    at           timestamptz NOT NULL
);
CREATE INDEX insights_events_referral ON insights.events (referral_id);
CREATE INDEX insights_events_structure ON insights.events (structure_id, at);

CREATE TABLE insights.structures (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    territory       text NOT NULL,
    commune_code    text,
    lat             double precision NOT NULL,
    lon             double precision NOT NULL,
    weekly_capacity integer NOT NULL,
    accepting       boolean NOT NULL,
    removed         boolean NOT NULL DEFAULT false,
    source_sequence bigint NOT NULL
);
CREATE INDEX insights_structures_territory ON insights.structures (territory);

CREATE TABLE insights.organisations (
    id        uuid PRIMARY KEY,
    name      text NOT NULL,
    kind      text NOT NULL,
    territory text NOT NULL
);
