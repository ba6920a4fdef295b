-- The web app owns only browser sessions and the sign-in flows in progress. Cookie
-- values and `state` are never stored: only their SHA-256, so a copy of this table
-- cannot be replayed as a cookie.

CREATE TABLE web.sessions (
    id_hash bytea PRIMARY KEY,
    account_id uuid NOT NULL,
    -- The active membership; NULL while the agent has none (waiting for approval).
    membership_id uuid,
    -- The synchronizer token of every state-changing form of this session.
    csrf text NOT NULL,
    -- Sent back to the provider as `id_token_hint` at sign-out.
    id_token text,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    -- The absolute end of the session, whatever its use.
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_account ON web.sessions (account_id);
CREATE INDEX sessions_expiry ON web.sessions (expires_at);

CREATE TABLE web.sign_in_flows (
    state_hash bytea PRIMARY KEY,
    -- The flow is bound to the browser that started it: SHA-256 of its flow cookie.
    browser_hash bytea NOT NULL,
    nonce text NOT NULL,
    pkce_verifier text NOT NULL,
    next text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_flows_age ON web.sign_in_flows (created_at);
