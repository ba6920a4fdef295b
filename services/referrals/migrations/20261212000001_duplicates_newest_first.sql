-- Possible duplicates at a bounded cost (issue 26, hot spots). A submission looks up the
-- earlier referrals with the same blind index of the phone number or of the e-mail
-- address; it now reads only the person's newest ones (referral ids are UUID v7, in the
-- order of creation), walking these indexes from the newest id down, so that a person
-- submitted thousands of times (a client retrying without an Idempotency-Key, a loop)
-- costs a submission what the first one cost. They replace the single-column indexes,
-- which nothing else reads.
CREATE INDEX persons_by_phone_key_newest ON referrals.persons (phone_key, referral_id DESC) WHERE phone_key IS NOT NULL;
CREATE INDEX persons_by_email_key_newest ON referrals.persons (email_key, referral_id DESC) WHERE email_key IS NOT NULL;
DROP INDEX referrals.persons_by_phone_key;
DROP INDEX referrals.persons_by_email_key;
