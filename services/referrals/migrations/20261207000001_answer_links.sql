-- Answer links (issue 23): how a structure without an account answers an offer, from the
-- link of an e-mail. A link is a capability for one referral at one structure. Only the
-- SHA-256 of its token is kept: the token itself is shown once, to the notifications
-- service that puts it in the e-mail, and is stored nowhere.
CREATE TABLE referrals.answer_links (
    id                   uuid PRIMARY KEY,
    referral_id          uuid NOT NULL REFERENCES referrals.referrals (id),
    structure_id         text NOT NULL,
    token_hash           bytea NOT NULL UNIQUE,
    -- What the page's forms carry back (random, base64url): bound to this link.
    csrf                 text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- The last time the link opened the follow-up of an accepted referral: it keeps
    -- working for AIGUILLAGE_ANSWER_LINK_TTL after this (or after the acceptance).
    last_used_at         timestamptz,
    -- A newer link for the same referral and structure was made: this one has ended.
    replaced_at          timestamptz,
    -- The last time a fresh link was asked for through this one (at most once an hour).
    renewal_requested_at timestamptz
);

-- A mint replaces the structure's earlier links for the referral; the purge and the
-- erasure delete a referral's links.
CREATE INDEX answer_links_by_referral ON referrals.answer_links (referral_id, structure_id);
