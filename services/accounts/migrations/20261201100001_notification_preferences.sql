-- Each agent's choice, per kind of notification message: immediate, daily (digest) or
-- never. A kind without a row gets its default (see contracts::MessageKind).
CREATE TABLE accounts.notification_preferences (
    account_id uuid NOT NULL REFERENCES accounts.accounts (id),
    kind       text NOT NULL,
    mode       text NOT NULL CHECK (mode IN ('immediate', 'daily', 'never')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, kind)
);
