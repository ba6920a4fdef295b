-- Aiguillage: one PostgreSQL login role per service, and a migration role that owns
-- every schema. A psql script: it creates the database if needed and then \connects to it.
--
--   psql -v ON_ERROR_STOP=1 -d postgres -f deploy/postgres/roles.sql \
--        -v dbname=aiguillage \
--        -v migrator_password='…' -v referrals_password='…' -v directory_password='…' \
--        -v matcher_password='…' -v insights_password='…' -v accounts_password='…' \
--        -v notify_password='…' -v web_password='…'
--
-- Run it as a superuser. Without one (a managed database whose admin has CREATEROLE and
-- CREATEDB), everything but the DDL guard at the end still applies, and the guard is
-- skipped with a notice; that admin is made a member of aiguillage_migrator, which
-- PostgreSQL requires to hand the database and schemas over to it. It is idempotent and
-- drops nothing: run it again after changing a password, or before rolling out a
-- release. Each *_password is optional; a role given none keeps the password it has (or
-- none, for certificate or peer authentication). `dbname` defaults to aiguillage.
--
-- Who connects as whom (DATABASE_URL of each process):
--
--   aiguillage migrate                    postgres://aiguillage_migrator:…@db:5432/aiguillage
--   aiguillage serve --services referrals postgres://aiguillage_referrals:…@db:5432/aiguillage
--   aiguillage serve --services directory postgres://aiguillage_directory:…@db:5432/aiguillage
--   aiguillage serve --services matcher   postgres://aiguillage_matcher:…@db:5432/aiguillage
--   aiguillage serve --services insights  postgres://aiguillage_insights:…@db:5432/aiguillage
--   aiguillage serve --services accounts  postgres://aiguillage_accounts:…@db:5432/aiguillage
--   aiguillage serve --services notify    postgres://aiguillage_notify:…@db:5432/aiguillage
--   aiguillage serve --services web       postgres://aiguillage_web:…@db:5432/aiguillage
--   aiguillage token | import | dlq | account | purge | keys | audit
--                                         the migrator's URL (an operator's tools)
--
-- A process that runs several services at once (`serve --services all`, the demo) needs
-- every one of their schemas, so it uses the migrator's URL, or a role granted those
-- service roles (GRANT aiguillage_referrals, aiguillage_matcher, … TO that_role).
--
-- What each role may do:
--
--   aiguillage_migrator   owns the database, the eight schemas (platform and one per
--                         service) and every object in them. Only it changes the schema,
--                         so `aiguillage migrate` runs as it, once per release, before the
--                         services roll out.
--   aiguillage_<service>  reads and writes the tables of its own schema only, and reads
--                         the platform's token signing keys and revoked tokens
--                         (platform.signing_keys, platform.tokens). It cannot even see
--                         another service's schema: referrals and accounts hold personal
--                         data, and only their own roles reach it. What a service needs of
--                         another it learns from events, or asks of that service's API.
--
-- Why the service roles also hold CREATE on the database, on the platform schema and on
-- their own schema: each `serve` process runs the migrations of the platform and of the
-- services it runs, under an advisory lock (so a process started alone, as in the demo,
-- needs no separate step). When they are already applied that is a no-op, but PostgreSQL
-- checks the CREATE privilege of `CREATE SCHEMA IF NOT EXISTS` and `CREATE TABLE IF NOT
-- EXISTS` before it notices that the object exists, and sqlx then reads each migration
-- history table. So each service role gets CREATE there, plus SELECT on those history
-- tables (which this script creates, with sqlx's own definition, so they can be granted
-- before the first migration). The DDL guard at the end makes sure they never actually
-- create anything: a service that starts before `aiguillage migrate` has run waits (it
-- retries with backoff) instead of creating tables that its own role would then own.

\set ON_ERROR_STOP on
\if :{?dbname}
\else
\set dbname aiguillage
\endif

-- Roles ------------------------------------------------------------------------------

DO $$
DECLARE
    r text;
BEGIN
    -- A group for what every service role shares; it cannot log in.
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aiguillage_service') THEN
        CREATE ROLE aiguillage_service NOLOGIN;
    END IF;
    FOREACH r IN ARRAY ARRAY['aiguillage_migrator', 'aiguillage_referrals', 'aiguillage_directory',
                             'aiguillage_matcher', 'aiguillage_insights', 'aiguillage_accounts',
                             'aiguillage_notify', 'aiguillage_web'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', r);
            EXCEPTION WHEN duplicate_object THEN
                -- Roles belong to the whole cluster: another run of this script (another
                -- database of the same server) created it in the meantime.
                NULL;
            END;
        END IF;
        IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            EXECUTE format('ALTER ROLE %I LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r);
        ELSE
            -- Only a superuser may even restate SUPERUSER, REPLICATION or BYPASSRLS; a role
            -- created just above has none of them (nor CREATEDB or CREATEROLE).
            EXECUTE format('ALTER ROLE %I LOGIN INHERIT', r);
        END IF;
        IF r <> 'aiguillage_migrator' THEN
            EXECUTE format('GRANT aiguillage_service TO %I', r);
        END IF;
    END LOOP;
    -- Without superuser, handing the database and the schemas to the migration role, and
    -- SET ROLE to it below, take membership in it.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'aiguillage_migrator', 'MEMBER') THEN
        EXECUTE format('GRANT aiguillage_migrator TO %I', current_user);
    END IF;
END
$$;

\if :{?migrator_password}
ALTER ROLE aiguillage_migrator PASSWORD :'migrator_password';
\endif
\if :{?referrals_password}
ALTER ROLE aiguillage_referrals PASSWORD :'referrals_password';
\endif
\if :{?directory_password}
ALTER ROLE aiguillage_directory PASSWORD :'directory_password';
\endif
\if :{?matcher_password}
ALTER ROLE aiguillage_matcher PASSWORD :'matcher_password';
\endif
\if :{?insights_password}
ALTER ROLE aiguillage_insights PASSWORD :'insights_password';
\endif
\if :{?accounts_password}
ALTER ROLE aiguillage_accounts PASSWORD :'accounts_password';
\endif
\if :{?notify_password}
ALTER ROLE aiguillage_notify PASSWORD :'notify_password';
\endif
\if :{?web_password}
ALTER ROLE aiguillage_web PASSWORD :'web_password';
\endif

-- Database ---------------------------------------------------------------------------

SELECT format('CREATE DATABASE %I OWNER aiguillage_migrator', :'dbname')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'dbname') \gexec
SELECT format('ALTER DATABASE %I OWNER TO aiguillage_migrator', :'dbname') \gexec
-- No one else connects or creates temporary tables.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'dbname') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO aiguillage_service', :'dbname') \gexec

\connect :dbname

-- Already the default since PostgreSQL 15; explicit for older servers.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Schemas, all owned by the migration role ------------------------------------------

DO $$
DECLARE
    s text;
    obj record;
BEGIN
    FOREACH s IN ARRAY ARRAY['platform', 'referrals', 'directory', 'matcher', 'insights', 'accounts',
                             'notify', 'web'] LOOP
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION aiguillage_migrator', s);
        EXECUTE format('ALTER SCHEMA %I OWNER TO aiguillage_migrator', s);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', s);
        -- A database first migrated by another role (a superuser, or the single role of
        -- an embedded deployment): hand its tables, sequences and functions to the
        -- migration role, so that later migrations can alter them.
        FOR obj IN
            SELECT c.relname, c.relkind
            FROM pg_class c
            WHERE c.relnamespace = s::regnamespace
              AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
              AND pg_get_userbyid(c.relowner) <> 'aiguillage_migrator'
              -- Sequences owned by a column follow their table.
              AND NOT (c.relkind = 'S' AND EXISTS (
                  SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
        LOOP
            EXECUTE format('ALTER %s %I.%I OWNER TO aiguillage_migrator',
                           CASE obj.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                            WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                                            ELSE 'TABLE' END,
                           s, obj.relname);
        END LOOP;
        FOR obj IN
            SELECT p.oid::regprocedure AS fn
            FROM pg_proc p
            WHERE p.pronamespace = s::regnamespace AND pg_get_userbyid(p.proowner) <> 'aiguillage_migrator'
        LOOP
            EXECUTE format('ALTER ROUTINE %s OWNER TO aiguillage_migrator', obj.fn);
        END LOOP;
    END LOOP;
END
$$;

-- Each service: its own schema only --------------------------------------------------

DO $$
DECLARE
    s text;
    r text;
BEGIN
    FOREACH s IN ARRAY ARRAY['referrals', 'directory', 'matcher', 'insights', 'accounts', 'notify', 'web'] LOOP
        r := 'aiguillage_' || s;
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
        -- What exists now, and (default privileges) what the migration role creates later.
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', s, r);
        EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', s, r);
        EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA %I TO %I', s, r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE aiguillage_migrator IN SCHEMA %I '
                       'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', s, r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE aiguillage_migrator IN SCHEMA %I '
                       'GRANT USAGE, SELECT ON SEQUENCES TO %I', s, r);
    END LOOP;
END
$$;

-- The audit of access to personal data: append-only ---------------------------------
-- aiguillage_referrals may add to referrals.audit and read it, never change or remove
-- an entry. (Its migration revokes the same when the role exists before the table; a
-- trigger refuses UPDATE, DELETE and TRUNCATE to every role, owner included.)

DO $$
BEGIN
    IF to_regclass('referrals.audit') IS NOT NULL THEN
        REVOKE UPDATE, DELETE, TRUNCATE ON referrals.audit FROM aiguillage_referrals, aiguillage_service, PUBLIC;
        GRANT SELECT, INSERT ON referrals.audit TO aiguillage_referrals;
    END IF;
END
$$;

-- Every service: the token signing keys and the revoked tokens -----------------------
-- With AIGUILLAGE_TOKEN_SECRET set (as deploy/ does), the keys are not read at all. Without
-- it, each process inserts a random key if none exists (INSERT … WHERE NOT EXISTS) and
-- reads the keys; the service roles may only read, so either set the secret or create
-- the first key beforehand (`aiguillage token issue`, run as the migrator, does).

GRANT USAGE ON SCHEMA platform TO aiguillage_service;
GRANT SELECT ON ALL TABLES IN SCHEMA platform TO aiguillage_service;
ALTER DEFAULT PRIVILEGES FOR ROLE aiguillage_migrator IN SCHEMA platform
    GRANT SELECT ON TABLES TO aiguillage_service;

-- Start-up migration (see the top of this file) --------------------------------------

SELECT format('GRANT CREATE ON DATABASE %I TO aiguillage_service', :'dbname') \gexec

SET ROLE aiguillage_migrator;
DO $$
DECLARE
    s text;
    h text;
    grantee text;
BEGIN
    FOREACH s IN ARRAY ARRAY['platform', 'referrals', 'directory', 'matcher', 'insights', 'accounts',
                             'notify', 'web'] LOOP
        -- The platform's history is every service's (each process migrates it); a
        -- service's own history, only its role's.
        grantee := CASE WHEN s = 'platform' THEN 'aiguillage_service' ELSE 'aiguillage_' || s END;
        EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO %I', s, grantee);
        -- _sqlx_migrations: the schema's own migrations; _bus_migrations: the service's
        -- outbox and inbox (neither the platform nor the web app has any). Same
        -- definition as sqlx's migrator creates.
        FOREACH h IN ARRAY CASE WHEN s IN ('platform', 'web') THEN ARRAY['_sqlx_migrations']
                                ELSE ARRAY['_sqlx_migrations', '_bus_migrations'] END LOOP
            EXECUTE format(
                'CREATE TABLE IF NOT EXISTS %I.%I (
                     version BIGINT PRIMARY KEY,
                     description TEXT NOT NULL,
                     installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
                     success BOOLEAN NOT NULL,
                     checksum BYTEA NOT NULL,
                     execution_time BIGINT NOT NULL
                 )', s, h);
            EXECUTE format('GRANT SELECT ON %I.%I TO %I', s, h, grantee);
        END LOOP;
    END LOOP;
    -- Earlier releases of this script gave every service role USAGE and CREATE on every
    -- schema, and SELECT on every history table: take them back.
    FOREACH s IN ARRAY ARRAY['referrals', 'directory', 'matcher', 'insights', 'accounts', 'notify', 'web'] LOOP
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM aiguillage_service', s);
        FOREACH h IN ARRAY ARRAY['_sqlx_migrations', '_bus_migrations'] LOOP
            IF to_regclass(format('%I.%I', s, h)) IS NOT NULL THEN
                EXECUTE format('REVOKE ALL ON %I.%I FROM aiguillage_service', s, h);
            END IF;
        END LOOP;
    END LOOP;
END
$$;
RESET ROLE;

-- The DDL guard: a service role may run CREATE … IF NOT EXISTS on what exists, but may
-- not create anything. An event trigger sees what a command actually created; if a
-- service role created something, the command fails and its transaction rolls back.
-- Creating an event trigger takes a superuser; without one this part is skipped.

DO $guard$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE NOTICE 'not a superuser: the DDL guard (event trigger) is not installed';
        RETURN;
    END IF;
    CREATE OR REPLACE FUNCTION platform.aiguillage_forbid_service_ddl() RETURNS event_trigger
    LANGUAGE plpgsql AS $fn$
    DECLARE
        created text;
    BEGIN
        -- Direct membership (pg_has_role would say yes for a superuser).
        IF current_user::text <> 'aiguillage_service' AND NOT EXISTS (
            SELECT 1 FROM pg_auth_members m
            WHERE m.roleid = 'aiguillage_service'::regrole AND m.member = current_user::regrole) THEN
            RETURN;
        END IF;
        SELECT string_agg(object_identity, ', ') INTO created FROM pg_event_trigger_ddl_commands();
        IF created IS NOT NULL THEN
            RAISE EXCEPTION 'role % may not change the database schema (it tried to create %)',
                current_user, created
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'run "aiguillage migrate" as aiguillage_migrator first';
        END IF;
    END
    $fn$;
    ALTER FUNCTION platform.aiguillage_forbid_service_ddl() OWNER TO aiguillage_migrator;
    REVOKE ALL ON FUNCTION platform.aiguillage_forbid_service_ddl() FROM PUBLIC;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'aiguillage_forbid_service_ddl') THEN
        CREATE EVENT TRIGGER aiguillage_forbid_service_ddl ON ddl_command_end
            EXECUTE FUNCTION platform.aiguillage_forbid_service_ddl();
    END IF;
END
$guard$;
