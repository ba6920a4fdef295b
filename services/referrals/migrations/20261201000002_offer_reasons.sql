-- Why the pending offer's structure was chosen, as codes with their values (rendered in
-- French by the pages), beside the English sentences of offer_explanation.
ALTER TABLE referrals.referrals ADD COLUMN IF NOT EXISTS offer_reasons jsonb;
