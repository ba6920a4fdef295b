-- What the other services know of an account comes from its `account.upserted` events
-- (memberships, notification choices, last sign-in; never a name or an address). Each
-- announcement takes the next number of the account's own sequence, in the transaction
-- of the change it announces, so consumers keep the latest. 0: never announced (the
-- accounts of a database from before these events, announced once at start).
ALTER TABLE accounts.accounts ADD COLUMN announced_sequence bigint NOT NULL DEFAULT 0;
CREATE INDEX accounts_unannounced ON accounts.accounts (id) WHERE announced_sequence = 0;
