-- New messages reach the search index only through the writer's batches. Storage numbers every
-- message it stores above the highest id stored, so above `search_indexed.up_to`: the insert
-- trigger of 0007 never indexed one. Its FTS5 insert still cost every multi-row INSERT into
-- `messages` a statement journal (an insert into a virtual table may abort the statement, so
-- SQLite copies each page the statement changes first) and a lookup of `up_to` per row. Edits
-- and deletions keep their triggers.
DROP TRIGGER messages_fts_insert;
