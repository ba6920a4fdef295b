-- How offers are answered and withdrawn (issue 23).
ALTER TABLE insights.referrals
    -- How the structure accepted: `account` (a signed-in mediator) or `answer_link` (the
    -- link of the offer's e-mail); NULL when the event does not say (an earlier version's,
    -- an administrator's or a machine client's acceptance).
    ADD COLUMN answered_via text,
    -- Offers withdrawn because the structure's address refused their e-mail for good
    -- (`referral.declined` with reason `structure_unreachable`).
    ADD COLUMN withdrawn_unreachable integer NOT NULL DEFAULT 0;
