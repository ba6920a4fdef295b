-- What-if scenarios a territory's coordinators saved to run again (issue 28): a name and
-- the request (period, seed, changes to structures). No personal data, and no author:
-- a scenario belongs to the territory.
CREATE TABLE matcher.simulation_scenarios (
    id         uuid PRIMARY KEY,
    territory  text NOT NULL,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    request    jsonb NOT NULL,
    saved_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (territory, name)
);
