-- Issue 23: places without an account answer through the link of an e-mail. Notify
-- keeps the public phone of each structure (for coordinators to call a place nobody can
-- reach), when its public address last refused a message for good (SMTP 5xx), and the
-- offers to withdraw because of it, until referrals has withdrawn them.
ALTER TABLE notify.structures ADD COLUMN contact_phone text;
ALTER TABLE notify.structures ADD COLUMN bounced_at timestamptz;

CREATE TABLE notify.withdrawals (
    referral_id     uuid NOT NULL,
    structure_id    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz,
    PRIMARY KEY (referral_id, structure_id)
);
CREATE INDEX notify_withdrawals_due ON notify.withdrawals (next_attempt_at) WHERE done_at IS NULL;
