-- Appointments, and telling the person (issue 24).
--
-- The place's address, from structure.upserted: what the person's SMS and e-mail say.
ALTER TABLE referrals.structures
    ADD COLUMN street   text,
    ADD COLUMN postcode text,
    ADD COLUMN commune  text;

-- A referral's appointment, set by the structure that accepted it. One row per referral:
-- moving it, cancelling it or setting a new one after a no-show bumps `version` (the
-- events' version), so messages and events of an older one are told apart.
CREATE TABLE referrals.appointments (
    referral_id            uuid PRIMARY KEY REFERENCES referrals.referrals (id),
    structure_id           text NOT NULL,
    version                integer NOT NULL,
    -- The version this appointment was first set at: moves keep it, so whether the
    -- person was told of it (and must be told it changed) is known.
    first_version          integer NOT NULL,
    at                     timestamptz NOT NULL,
    duration_minutes       integer NOT NULL,
    -- A room or another place than the structure's address ("Salle 2"): not personal.
    place                  text,
    -- sms | email | referrer: how the person is told, from their contact preference.
    channel                text NOT NULL,
    set_at                 timestamptz NOT NULL,
    cancelled_at           timestamptz,
    attended               boolean,
    attendance_recorded_at timestamptz
);

-- Messages to the person about their appointment, beside their sealed record. A message
-- is composed when it goes, from the appointment and the place as they are then; its
-- recipient (the person's phone number or e-mail address) is sealed here while it waits,
-- and deleted once it is sent or has failed. A message for the referrer channel is a
-- note that the referrer was told (the notifications service sends that e-mail).
CREATE TABLE referrals.person_messages (
    id              uuid PRIMARY KEY,
    referral_id     uuid NOT NULL REFERENCES referrals.referrals (id),
    version         integer NOT NULL,
    -- set | changed | cancelled | reminder
    kind            text NOT NULL,
    -- sms | email | referrer
    channel         text NOT NULL,
    -- queued | sent | delivered | failed
    status          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- When it was meant to go (a reminder's time): retried for a day from then.
    due_at          timestamptz NOT NULL,
    -- Not before (a reminder's time); retried with backoff from then on.
    next_attempt_at timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    recipient       bytea,
    key_id          integer,
    provider_id     text,
    error           text,
    sent_at         timestamptz,
    -- A failure was announced (referral.person_notice_failed), so the referrer was told.
    failure_announced boolean NOT NULL DEFAULT false,
    -- One message of each kind per appointment version: an event or a request replayed
    -- cannot queue a second.
    UNIQUE (referral_id, version, kind)
);
CREATE INDEX person_messages_due ON referrals.person_messages (next_attempt_at) WHERE status = 'queued';
CREATE INDEX person_messages_unannounced ON referrals.person_messages (id)
    WHERE status = 'failed' AND NOT failure_announced;
