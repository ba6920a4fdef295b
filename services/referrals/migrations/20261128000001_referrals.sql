-- Referrals, the people they are about (personal data lives only here), offers, the
-- history of every step, and idempotency keys.

CREATE TABLE referrals.referrals (
    id                  uuid PRIMARY KEY,
    organisation_id     uuid NOT NULL,
    status              text NOT NULL,
    territory           text NOT NULL,
    commune_code        text NOT NULL,
    lat                 double precision NOT NULL,
    lon                 double precision NOT NULL,
    needs               text[] NOT NULL,
    modes               text[] NOT NULL,
    languages           text[] NOT NULL,
    accessibility       text[] NOT NULL,
    urgency             text NOT NULL,
    deadline            date,
    max_distance_km     double precision NOT NULL,
    -- Offers made so far, over every routing round.
    attempts            integer NOT NULL DEFAULT 0,
    escalated           boolean NOT NULL DEFAULT false,
    waitlist_reason     text,
    -- Each coordinator reroute starts a new round; match events of older rounds are stale.
    round               integer NOT NULL DEFAULT 0,
    -- Sequence of the last match.* event applied (the matcher's per-referral order).
    match_sequence      bigint NOT NULL DEFAULT 0,
    -- The pending offer; its expiry is the durable timer.
    offer_structure_id   text,
    offer_structure_name text,
    offer_reservation_id uuid,
    offered_at           timestamptz,
    offer_expires_at     timestamptz,
    offer_distance_km    double precision,
    offer_score          double precision,
    offer_explanation    jsonb,
    -- The structure that accepted.
    structure_id        text,
    structure_name      text,
    accepted_at         timestamptz,
    outcome             text,
    closed_at           timestamptz,
    -- Sequence of the referral.* events of this referral.
    event_sequence      bigint NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    status_changed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referrals_by_organisation ON referrals.referrals (organisation_id, created_at DESC, id DESC);
CREATE INDEX referrals_by_territory ON referrals.referrals (territory, created_at DESC, id DESC);
CREATE INDEX referrals_offered_to ON referrals.referrals (offer_structure_id) WHERE status = 'offered';
CREATE INDEX referrals_accepted_by ON referrals.referrals (structure_id) WHERE structure_id IS NOT NULL;
CREATE INDEX referrals_offer_timers ON referrals.referrals (offer_expires_at) WHERE status = 'offered';

CREATE TABLE referrals.persons (
    referral_id        uuid PRIMARY KEY REFERENCES referrals.referrals (id),
    first_name         text NOT NULL,
    last_name          text NOT NULL,
    phone              text,
    email              text,
    contact_preference text NOT NULL,
    commune_name       text NOT NULL,
    note               text,
    consent_method     text,
    consent_at         timestamptz
);

CREATE TABLE referrals.history (
    id           bigserial PRIMARY KEY,
    referral_id  uuid NOT NULL REFERENCES referrals.referrals (id),
    at           timestamptz NOT NULL DEFAULT now(),
    -- submitted, offered, declined, offer_expired, waitlisted, accepted, contacted,
    -- closed, cancelled, rerouted, offer_withdrawn
    step         text NOT NULL,
    status       text NOT NULL,
    structure_id text,
    reason       text,
    actor        text,
    -- Free text written by a person (decline comment, cancel reason): shown only to
    -- callers who may see personal data.
    comment      text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX history_by_referral ON referrals.history (referral_id, id);

CREATE TABLE referrals.idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    referral_id  uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Public structure records (from structure.upserted), to show the accepting structure's
-- name and contact.
CREATE TABLE referrals.structures (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    phone           text,
    email           text,
    website         text,
    source_sequence bigint NOT NULL
);
