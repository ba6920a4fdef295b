-- Signing keys with ids, so the key can be rotated while tokens signed with the previous
-- one stay valid for an overlap; and a registry of issued bearer tokens, so they can be
-- listed and revoked.
CREATE TABLE IF NOT EXISTS platform.signing_keys (
    kid        text PRIMARY KEY,
    secret     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- When tokens signed with this key stop being accepted (set by a rotation).
    retires_at timestamptz
);

INSERT INTO platform.signing_keys (kid, secret, created_at)
SELECT 'k' || to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS'), secret, created_at
FROM platform.signing_key
ON CONFLICT DO NOTHING;

DROP TABLE IF EXISTS platform.signing_key;

CREATE TABLE IF NOT EXISTS platform.tokens (
    id         uuid PRIMARY KEY,
    role       text NOT NULL,
    -- {"organisation": …} | {"structure": …} | {"territories": […]} | {}
    scope      jsonb NOT NULL,
    label      text,
    kid        text NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS tokens_revoked ON platform.tokens (revoked_at) WHERE revoked_at IS NOT NULL;
