-- Insights' facts for the open statistics' read benchmark (tests/load/bench/open-data.sh):
-- :referrals referrals over the last twelve months, spread over the 101 départements
-- (skewed, as demand is: a few départements carry most of it), with the events the
-- published figures read. The figures are plausible, not real: the benchmark measures
-- reading and computing, and a million referrals through the pipeline would take an hour.
--
--   psql -v referrals=1000000 -f tests/load/bench/open-data-facts.sql DATABASE
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE departements AS
SELECT row_number() OVER () - 1 AS i, code
FROM unnest(ARRAY['75','13','59','69','92','93','33','94','31','44','62','78','91','95','06','67','76','34','38','35',
                  '77','83','57','60','74','29','64','56','45','14','54','68','49','30','974','17','42','37','63','84',
                  '01','27','51','22','85','80','972','86','02','25','971','26','71','50','73','66','72','11','24','47',
                  '10','16','81','28','87','88','40','03','53','18','21','79','65','61','41','973','82','89','70','19',
                  '12','2A','2B','07','43','52','976','36','55','58','39','04','08','32','46','90','05','09','15','23',
                  '48']) AS code;
CREATE TEMP TABLE drawn AS
SELECT gen_random_uuid() AS referral_id, floor(power(random(), 2.2) * 101)::int AS i,
       now() - random() * interval '365 days' AS submitted_at,
       random() AS fate, random() AS second, random() AS delay
FROM generate_series(1, :referrals) AS g;
CREATE TEMP TABLE seeded AS SELECT drawn.*, d.code AS territory FROM drawn JOIN departements d USING (i);
-- fate < 0.07: waitlisted and never offered; < 0.82: accepted (a quarter of them after a
-- second place, `second` < 0.25); < 0.9: offered and still open or declined; else
-- cancelled before any offer.
INSERT INTO insights.referrals (referral_id, territory, commune_code, needs, urgency, submitted_at, status,
                                status_at, first_offered_at, accepted_at, closed_at, outcome, offers,
                                current_structure, accepted_structure, waitlisted_at)
SELECT referral_id, territory, territory || '001', ARRAY['administratif'], 'standard', submitted_at,
       CASE WHEN fate < 0.07 THEN 'waitlisted' WHEN fate < 0.60 THEN 'closed' WHEN fate < 0.82 THEN 'accepted'
            WHEN fate < 0.90 THEN 'offered' ELSE 'cancelled' END,
       submitted_at,
       CASE WHEN fate >= 0.07 AND fate < 0.90 THEN submitted_at + interval '2 minutes' END,
       CASE WHEN fate >= 0.07 AND fate < 0.82 THEN submitted_at + delay * interval '6 days' END,
       CASE WHEN fate >= 0.07 AND fate < 0.60 THEN submitted_at + interval '20 days' END,
       CASE WHEN fate >= 0.07 AND fate < 0.60 THEN (CASE WHEN second < 0.8 THEN 'completed' ELSE 'unreachable' END) END,
       CASE WHEN fate >= 0.07 AND fate < 0.90 THEN (CASE WHEN second < 0.25 THEN 2 ELSE 1 END) ELSE 0 END,
       CASE WHEN fate >= 0.82 AND fate < 0.90 THEN 'bench-' || territory || '-1' END,
       CASE WHEN fate >= 0.07 AND fate < 0.82 THEN 'bench-' || territory || (CASE WHEN second < 0.25 THEN '-2' ELSE '-1' END) END,
       CASE WHEN fate < 0.07 OR (second < 0.05 AND fate < 0.90) THEN submitted_at + interval '1 minute' END
FROM seeded;
INSERT INTO insights.events (event_id, referral_id, kind, structure_id, at)
SELECT gen_random_uuid(), referral_id, 'offered', 'bench-' || territory || '-1', submitted_at + interval '2 minutes'
FROM seeded WHERE fate >= 0.07 AND fate < 0.90
UNION ALL
SELECT gen_random_uuid(), referral_id, 'declined', 'bench-' || territory || '-1', submitted_at + interval '1 day'
FROM seeded WHERE fate >= 0.07 AND fate < 0.90 AND second < 0.25
UNION ALL
SELECT gen_random_uuid(), referral_id, 'offered', 'bench-' || territory || '-2', submitted_at + interval '1 day'
FROM seeded WHERE fate >= 0.07 AND fate < 0.90 AND second < 0.25
UNION ALL
SELECT gen_random_uuid(), referral_id, 'accepted', 'bench-' || territory || (CASE WHEN second < 0.25 THEN '-2' ELSE '-1' END),
       submitted_at + delay * interval '6 days'
FROM seeded WHERE fate >= 0.07 AND fate < 0.82
UNION ALL
SELECT gen_random_uuid(), referral_id, 'waitlisted', NULL, submitted_at + interval '1 minute'
FROM seeded WHERE fate < 0.07 OR (second < 0.05 AND fate < 0.90);
COMMIT;
ANALYZE insights.referrals;
ANALYZE insights.events;
SELECT count(*) AS referrals, count(DISTINCT territory) AS departements FROM insights.referrals;
