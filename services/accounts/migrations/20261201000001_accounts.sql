-- People who sign in (agents), what they may do (memberships), what they asked for
-- (requests), who was invited before signing in, and the audit of all of it. Agents'
-- names and e-mail addresses are personal data: they never leave this schema except in
-- answers to the agent themself and to those who approve them.

CREATE TABLE accounts.accounts (
    id              uuid PRIMARY KEY,
    -- The identity: the OpenID issuer and its subject.
    issuer          text NOT NULL,
    subject         text NOT NULL,
    given_name      text,
    usual_name      text,
    email           text NOT NULL,
    -- The e-mail address as matched against invitations (lower case).
    email_key       text NOT NULL,
    siret           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at timestamptz,
    UNIQUE (issuer, subject)
);
CREATE INDEX accounts_by_email ON accounts.accounts (email_key);

CREATE TABLE accounts.memberships (
    id              uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts.accounts (id),
    -- admin | referrer | mediator | coordinator
    role            text NOT NULL,
    organisation_id uuid,
    structure_id    text,
    territories     text[] NOT NULL DEFAULT '{}',
    granted_at      timestamptz NOT NULL DEFAULT now(),
    granted_by      text NOT NULL,
    removed_at      timestamptz,
    removed_by      text
);
CREATE INDEX memberships_of_account ON accounts.memberships (account_id) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX memberships_once ON accounts.memberships
    (account_id, role, COALESCE(organisation_id::text, ''), COALESCE(structure_id, ''), territories)
    WHERE removed_at IS NULL;

CREATE TABLE accounts.requests (
    id              uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts.accounts (id),
    role            text NOT NULL,
    organisation_id uuid,
    structure_id    text,
    territories     text[] NOT NULL DEFAULT '{}',
    -- Free text from the agent (who they are, why): personal data.
    message         text,
    -- pending | approved | refused
    status          text NOT NULL DEFAULT 'pending',
    created_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    decided_by      text,
    decision_reason text
);
CREATE UNIQUE INDEX requests_once ON accounts.requests
    (account_id, role, COALESCE(organisation_id::text, ''), COALESCE(structure_id, ''), territories)
    WHERE status = 'pending';
CREATE INDEX requests_pending ON accounts.requests (created_at) WHERE status = 'pending';

CREATE TABLE accounts.invitations (
    id              uuid PRIMARY KEY,
    email           text NOT NULL,
    email_key       text NOT NULL,
    role            text NOT NULL,
    organisation_id uuid,
    structure_id    text,
    territories     text[] NOT NULL DEFAULT '{}',
    invited_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    accepted_at     timestamptz,
    accepted_by     uuid REFERENCES accounts.accounts (id)
);
CREATE INDEX invitations_open ON accounts.invitations (email_key) WHERE accepted_at IS NULL;

-- Public records of organisations and structures (from directory events): their names,
-- départements and SIRETs, to label memberships and match agents to their workplace.
CREATE TABLE accounts.places (
    kind            text NOT NULL,
    id              text NOT NULL,
    name            text NOT NULL,
    commune         text,
    territory       text NOT NULL,
    siret           text,
    removed         boolean NOT NULL DEFAULT false,
    source_sequence bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
);
CREATE INDEX places_by_siret ON accounts.places (siret) WHERE siret IS NOT NULL;

-- Every sign-in, failed sign-in, sign-out, request, decision, invitation and removal:
-- who (actor), from which membership, what, about which account. No personal value.
CREATE TABLE accounts.audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    actor       text NOT NULL,
    membership  text,
    account_id  uuid,
    territories text[] NOT NULL DEFAULT '{}',
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_time ON accounts.audit (at DESC, id DESC);

-- What a membership, a request or an invitation names, as people read it (label), and
-- the départements it concerns (scope): who among coordinators may manage it. Both come
-- from the places read model, so a name or a département that changes in the directory
-- changes here too.
CREATE FUNCTION accounts.grant_label(role text, organisation_id uuid, structure_id text, territories text[])
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE role
        WHEN 'admin' THEN 'Administration'
        WHEN 'coordinator' THEN 'Départements ' || array_to_string(territories, ', ')
        ELSE COALESCE(
            (SELECT name FROM accounts.places p
             WHERE p.kind = CASE role WHEN 'referrer' THEN 'organisation' ELSE 'structure' END
               AND p.id = COALESCE(organisation_id::text, structure_id)),
            COALESCE(organisation_id::text, structure_id))
    END
$$;

CREATE FUNCTION accounts.grant_scope(role text, organisation_id uuid, structure_id text, territories text[])
RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT CASE role
        WHEN 'admin' THEN '{}'::text[]
        WHEN 'coordinator' THEN territories
        ELSE COALESCE(
            (SELECT ARRAY[territory] FROM accounts.places p
             WHERE p.kind = CASE role WHEN 'referrer' THEN 'organisation' ELSE 'structure' END
               AND p.id = COALESCE(organisation_id::text, structure_id)),
            '{}'::text[])
    END
$$;
