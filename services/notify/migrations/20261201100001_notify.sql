-- Notifications: a read model of what messages need (referrals and structures, no
-- personal data), the outbox of e-mails (account ids, never agents' addresses; only a
-- structure's public contact address), durable timers for reminders and digests, and
-- webhook subscriptions with their deliveries.

CREATE TABLE notify.referrals (
    referral_id     uuid PRIMARY KEY,
    organisation_id uuid,
    submitted_by    uuid,
    commune_code    text,
    territory       text,
    needs           text[] NOT NULL DEFAULT '{}',
    submitted_at    timestamptz,
    -- The latest state known, from the event with the highest sequence.
    status          text NOT NULL DEFAULT 'submitted',
    structure_id    text,
    last_event_at   timestamptz NOT NULL DEFAULT now(),
    last_sequence   bigint NOT NULL DEFAULT 0
);
CREATE INDEX notify_referrals_stale ON notify.referrals (territory, last_event_at)
    WHERE status IN ('submitted', 'offered', 'waitlisted', 'accepted', 'in_progress');

CREATE TABLE notify.structures (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    territory       text NOT NULL,
    commune         text,
    -- The public contact address from the directory (institutional, not personal).
    contact_email   text,
    removed         boolean NOT NULL DEFAULT false,
    -- When the structure, having no mediator, was last invited to join.
    invited_at      timestamptz,
    source_sequence bigint NOT NULL DEFAULT 0
);
CREATE INDEX notify_structures_territory ON notify.structures (territory) WHERE NOT removed;

CREATE TABLE notify.messages (
    id              uuid PRIMARY KEY,
    -- The event (or timer firing) the message comes from.
    source_id       uuid NOT NULL,
    kind            text NOT NULL,
    -- Exactly one of: an agent (address resolved at send time), or a structure's
    -- public contact address.
    account_id      uuid,
    address         text,
    recipient       text NOT NULL GENERATED ALWAYS AS (COALESCE(account_id::text, address)) STORED,
    referral_id     uuid,
    structure_id    text,
    subject         text NOT NULL,
    body_text       text NOT NULL,
    body_html       text NOT NULL,
    -- The page the message is about (for the daily digest's list).
    link            text NOT NULL,
    -- pending: to send; held: waits for the daily digest; digested: went out in one;
    -- sent; failed: refused for good (see error).
    status          text NOT NULL DEFAULT 'pending',
    digest_id       uuid,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_until   timestamptz,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CHECK ((account_id IS NULL) <> (address IS NULL)),
    UNIQUE (source_id, recipient, kind)
);
CREATE INDEX notify_messages_due ON notify.messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notify_messages_held ON notify.messages (account_id) WHERE status = 'held';
CREATE INDEX notify_messages_failed ON notify.messages (created_at DESC) WHERE status = 'failed';

-- Reminders (one per referral and kind) and digests (one row per kind, rescheduled each
-- time it fires). A timer fires in the transaction that locks it (SKIP LOCKED) and moves
-- or clears it, so two replicas never fire the same one.
CREATE TABLE notify.timers (
    kind         text NOT NULL,
    -- The referral of a reminder; the nil UUID for a digest.
    referral_id  uuid NOT NULL,
    structure_id text,
    due_at       timestamptz NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    -- The sequence of the event that last set or cleared it (events may come out of order).
    sequence     bigint NOT NULL DEFAULT 0,
    fired_at     timestamptz,
    PRIMARY KEY (kind, referral_id)
);
CREATE INDEX notify_timers_due ON notify.timers (due_at) WHERE active;

CREATE TABLE notify.webhooks (
    id            uuid PRIMARY KEY,
    -- organisation | structure | territory | all (admin)
    scope_kind    text NOT NULL,
    scope_id      text NOT NULL,
    url           text NOT NULL,
    secret        text NOT NULL,
    events        text[] NOT NULL,
    failing       boolean NOT NULL DEFAULT false,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
CREATE INDEX notify_webhooks_live ON notify.webhooks (scope_kind, scope_id) WHERE deleted_at IS NULL;

CREATE TABLE notify.webhook_deliveries (
    id               uuid PRIMARY KEY,
    webhook_id       uuid NOT NULL REFERENCES notify.webhooks (id),
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    body             text NOT NULL,
    -- pending | delivered | dead (24 h of failures)
    status           text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_until    timestamptz,
    last_error       text,
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX notify_webhook_due ON notify.webhook_deliveries (next_attempt_at) WHERE status = 'pending';
