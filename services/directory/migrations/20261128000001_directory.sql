-- The directory: organisations that refer people, and structures that help them.

CREATE TABLE directory.organisations (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    kind       text NOT NULL,
    territory  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE directory.structures (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    services        text[] NOT NULL,
    modes           text[] NOT NULL,
    languages       text[] NOT NULL,
    other_languages boolean NOT NULL DEFAULT false,
    accessibility   text[] NOT NULL,
    street          text,
    postcode        text,
    commune         text,
    commune_code    text,
    lat             double precision NOT NULL,
    lon             double precision NOT NULL,
    territory       text NOT NULL,
    opening_hours   text,
    weekly_capacity integer NOT NULL CHECK (weekly_capacity >= 0),
    accepting       boolean NOT NULL DEFAULT true,
    phone           text,
    email           text,
    website         text,
    source          text,
    fees            text[] NOT NULL DEFAULT '{}',
    labels          text[] NOT NULL DEFAULT '{}',
    pivot           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX structures_territory ON directory.structures (territory, id);

-- Idempotency-Key of creating writes, per caller scope.
CREATE TABLE directory.idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    resource_id  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
