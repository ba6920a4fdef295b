-- The account of the agent who submitted the referral (when submitted through the web
-- app): who is told what became of it. An id, not a name.
ALTER TABLE referrals.referrals ADD COLUMN IF NOT EXISTS submitted_by uuid;
