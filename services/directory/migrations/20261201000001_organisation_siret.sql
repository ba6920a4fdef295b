-- The SIRET of a referring organisation, so an agent signing in through ProConnect (which
-- gives the agent's SIRET) is offered their organisation first.
ALTER TABLE directory.organisations ADD COLUMN IF NOT EXISTS siret text;
CREATE INDEX IF NOT EXISTS organisations_by_siret ON directory.organisations (siret) WHERE siret IS NOT NULL;
CREATE INDEX IF NOT EXISTS structures_by_pivot ON directory.structures (pivot) WHERE pivot IS NOT NULL;
