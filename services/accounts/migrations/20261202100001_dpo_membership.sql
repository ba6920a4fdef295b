-- The data protection officer signs in like any agent: a membership with the role `dpo`,
-- national like an admin's, that reads the audit of access to personal data and nothing
-- else. Its label is the role's name; like an admin's, it concerns no département.

CREATE OR REPLACE FUNCTION accounts.grant_label(role text, organisation_id uuid, structure_id text, territories text[])
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    found text;
BEGIN
    IF role = 'admin' THEN
        RETURN 'Administration';
    ELSIF role = 'dpo' THEN
        RETURN 'Protection des données';
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
    IF role IN ('admin', 'dpo') THEN
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
