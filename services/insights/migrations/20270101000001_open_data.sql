-- Open statistics (issue 25): the public figures per département and month.

-- The waitlist's history, so that a month that has ended says how many of its referrals
-- were waiting at its end, the same figure whatever happens later: each waitlisting is
-- now a row of insights.events (kind `waitlisted`). Before this, only the last one of a
-- referral was kept (referrals.waitlisted_at): it stands in for its history.
INSERT INTO insights.events (event_id, referral_id, kind, structure_id, reason, at)
SELECT md5(referral_id::text || ':waitlisted:' || waitlisted_at::text)::uuid, referral_id, 'waitlisted', NULL,
       waitlist_reason, waitlisted_at
FROM insights.referrals WHERE waitlisted_at IS NOT NULL
ON CONFLICT (event_id) DO NOTHING;

-- The published table, as last computed (with statistical secrecy applied): one row
-- per département and month, and the national row (`France`). The files and the page
-- read this, not the facts; it is recomputed from the facts when older than a few
-- minutes (open_data_generation).
CREATE TABLE insights.open_data (
    mois                            date NOT NULL,
    departement                     text NOT NULL,
    orientations                    bigint,
    proposees                       bigint,
    acceptees                       bigint,
    reorientees                     bigint,
    en_attente                      bigint,
    accompagnements_realises        bigint,
    delai_acceptation_mediane_jours double precision,
    taux_reorientation              double precision,
    provisoire                      boolean NOT NULL,
    -- The hidden columns of the row, separated by `|` (empty: none).
    secret                          text NOT NULL,
    PRIMARY KEY (mois, departement)
);
CREATE INDEX insights_open_data_departement ON insights.open_data (departement, mois);

CREATE TABLE insights.open_data_generation (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generated_at timestamptz NOT NULL
);
