-- Structure changes are found by the transaction that wrote them, not by a clock row.
-- The clock's row lock, held until commit, made every structure change wait for the one
-- before it to reach the disk: a national import reached the matcher at about 400
-- structures a second. A reader now remembers, from the snapshot it read at, the first
-- transaction id not yet started and the ids then in progress; the next read takes the
-- rows written by those transactions or later ones. That is exact: every other writer had
-- finished, and its rows were already read.
ALTER TABLE matcher.structures ADD COLUMN written_by xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX structures_written_by ON matcher.structures (written_by);
DROP INDEX matcher.structures_version;
ALTER TABLE matcher.structures DROP COLUMN version;
DROP TABLE matcher.structure_clock;
