-- grant_label and grant_scope run for every membership of every page a signed-in agent
-- opens. As SQL functions that cannot be inlined they were planned again at each call
-- (about 0.3 ms for one membership); PL/pgSQL keeps their plans for the connection.
-- Same arguments, same results.

CREATE OR REPLACE FUNCTION accounts.grant_label(role text, organisation_id uuid, structure_id text, territories text[])
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    found text;
BEGIN
    IF role = 'admin' THEN
        RETURN 'Administration';
    ELSIF role = 'coordinator' THEN
        RETURN 'Départements ' || array_to_string(territories, ', ');
    END IF;
    SELECT p.name INTO found FROM accounts.places p
     WHERE p.kind = CASE role WHEN 'referrer' THEN 'organisation' ELSE 'structure' END
       AND p.id = COALESCE(organisation_id::text, structure_id);
    RETURN COALESCE(found, organisation_id::text, structure_id);
END
$$;

CREATE OR REPLACE FUNCTION accounts.grant_scope(role text, organisation_id uuid, structure_id text, territories text[])
RETURNS text[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    found text;
BEGIN
    IF role = 'admin' THEN
        RETURN '{}'::text[];
    ELSIF role = 'coordinator' THEN
        RETURN territories;
    END IF;
    SELECT p.territory INTO found FROM accounts.places p
     WHERE p.kind = CASE role WHEN 'referrer' THEN 'organisation' ELSE 'structure' END
       AND p.id = COALESCE(organisation_id::text, structure_id);
    RETURN CASE WHEN found IS NULL THEN '{}'::text[] ELSE ARRAY[found] END;
END
$$;
