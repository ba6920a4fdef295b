-- Membership requests' free text is personal data, written by people: the agent's message
-- (who they are, why they ask) and the reason given when a request is refused. Both are
-- sealed by the application as agents' names are (platform::vault), bound to
-- `requests.message:<id>` and `requests.decision_reason:<id>`. key_id is set once the row's
-- texts are sealed; a row with text and no key_id comes from before this change, and the
-- service seals it when it starts.
ALTER TABLE accounts.requests
    ALTER COLUMN message TYPE bytea USING convert_to(message, 'UTF8'),
    ALTER COLUMN decision_reason TYPE bytea USING convert_to(decision_reason, 'UTF8'),
    ADD COLUMN key_id integer;
UPDATE accounts.requests SET key_id = 0 WHERE message IS NULL AND decision_reason IS NULL;
