-- Issue 26 (item 3): the plan of the possible-duplicates lookup (services/referrals/src/
-- store.rs, `submit`: the `same` and `duplicates` parts) when a person was submitted
-- 5,000 times. On a scratch database the migrations were run on (`aiguillage migrate`):
--
--   psql -d scratch -f tests/load/bench/same-person-explain.sql
--
-- 110,000 referrals: 5,000 open ones of organisation A about one person (a loop), 5,000
-- closed ones of A about another (the lookup's worst case: nothing to list), the rest of
-- 50 other organisations about one person each. Then EXPLAIN (ANALYZE, BUFFERS) of the
-- lookup for the first person, the second and a person seen once, with a custom and a
-- generic plan (the server's prepared statement may use either). It changes the data:
-- a scratch database only.
\set ON_ERROR_STOP on
CREATE FUNCTION pg_temp.uuid7(at timestamptz) RETURNS uuid LANGUAGE sql AS $$
  SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0')
          || '7' || substr(md5(random()::text), 1, 3)
          || to_hex(8 + floor(random() * 4)::int) || substr(md5(random()::text), 1, 15))::uuid
$$;
CREATE TEMP TABLE plan AS
SELECT i,
       CASE WHEN i <= 10000 THEN 'a0000000-0000-0000-0000-00000000000a'::uuid
            ELSE ('b0000000-0000-0000-0000-' || lpad((i % 50)::text, 12, '0'))::uuid END AS org,
       CASE WHEN i <= 5000 THEN 'submitted' WHEN i <= 10000 THEN 'closed'
            ELSE (ARRAY['submitted','offered','accepted','closed','cancelled','waitlisted'])[1 + i % 6] END AS status,
       CASE WHEN i <= 5000 THEN decode(md5('same-phone'), 'hex')
            WHEN i <= 10000 THEN decode(md5('closed-phone'), 'hex')
            ELSE decode(md5('phone' || i), 'hex') END AS phone_key,
       CASE WHEN i <= 5000 THEN decode(md5('same-email'), 'hex')
            WHEN i <= 10000 THEN decode(md5('closed-email'), 'hex')
            WHEN i % 3 = 0 THEN decode(md5('email' || i), 'hex') END AS email_key,
       CASE WHEN i <= 10000 THEN now() - interval '1 day' + i * interval '10 ms'
            ELSE now() - interval '30 days' + i * interval '20 seconds' END AS at
FROM generate_series(1, 110000) i;
ALTER TABLE plan ADD COLUMN id uuid;
UPDATE plan SET id = pg_temp.uuid7(at);
INSERT INTO referrals.referrals (id, organisation_id, status, territory, commune_code, lat, lon, needs, modes, languages,
                                 accessibility, urgency, max_distance_km, created_at, updated_at)
SELECT id, org, status, '16', '16015', 45.6, 0.15, '{aide_demarches_administratives}', '{}', '{}', '{}', 'normal', 30,
       at, at
FROM plan;
INSERT INTO referrals.persons (referral_id, first_name, last_name, contact_preference, commune_name, phone_key, email_key)
SELECT id, '\x00', '\x00', 'phone', 'Angoulême', phone_key, email_key FROM plan;
VACUUM ANALYZE referrals.referrals;
VACUUM ANALYZE referrals.persons;

-- $1 organisation, $2 phone key, $3 e-mail key, $4 DUPLICATES_LOOKBACK.
PREPARE lookup(uuid, bytea, bytea, bigint) AS
WITH same AS (
     SELECT DISTINCT referral_id FROM (
         (SELECT referral_id FROM referrals.persons WHERE phone_key = $2 ORDER BY referral_id DESC LIMIT $4)
         UNION ALL
         (SELECT referral_id FROM referrals.persons WHERE email_key = $3 ORDER BY referral_id DESC LIMIT $4)
     ) keyed
 ),
 duplicates AS (
     SELECT o.id, o.created_at FROM (SELECT referral_id FROM same ORDER BY referral_id DESC) newest
     CROSS JOIN LATERAL (
         SELECT id, created_at FROM referrals.referrals
         WHERE id = newest.referral_id AND organisation_id = $1 AND status NOT IN ('closed', 'cancelled')
         LIMIT 1
     ) o
     ORDER BY newest.referral_id DESC LIMIT 10
 )
SELECT ARRAY(SELECT id FROM duplicates ORDER BY created_at DESC) AS possible_duplicates;

\set a '''a0000000-0000-0000-0000-00000000000a'''
SET plan_cache_mode = force_custom_plan;
\echo 'the person submitted 5,000 times, open (custom plan)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE lookup(:a, decode(md5('same-phone'), 'hex'), decode(md5('same-email'), 'hex'), 200);
\echo 'the person with 5,000 closed referrals (custom plan)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE lookup(:a, decode(md5('closed-phone'), 'hex'), decode(md5('closed-email'), 'hex'), 200);
\echo 'a person seen once (custom plan)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE lookup(:a, decode(md5('phone12'), 'hex'), decode(md5('email12'), 'hex'), 200);
SET plan_cache_mode = force_generic_plan;
\echo 'the person submitted 5,000 times, open (generic plan)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE lookup(:a, decode(md5('same-phone'), 'hex'), decode(md5('same-email'), 'hex'), 200);
\echo 'the person with 5,000 closed referrals (generic plan)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE lookup(:a, decode(md5('closed-phone'), 'hex'), decode(md5('closed-email'), 'hex'), 200);
