-- The search index takes new messages in batches. Indexing each commit's messages as they
-- were stored made FTS5 write a segment per commit, and merge them: at low rates (a message
-- or two per commit) that was most of the index's cost, and its pages in every commit's WAL
-- frames. Now the index holds exactly the messages (kind 0 and 1) with ids up to
-- `search_indexed.up_to`; the writer indexes the ones above it together (once 1,024 wait, or
-- a second after the first came) and moves `up_to` in the same transaction, and a search
-- reads the few messages above it directly.
CREATE TABLE search_indexed (
    id    INTEGER PRIMARY KEY CHECK (id = 0),
    up_to INTEGER NOT NULL
);
-- Every message stored so far is indexed.
INSERT INTO search_indexed (id, up_to) SELECT 0, coalesce(max(id), 0) FROM messages;

-- The index is made again without its per-message size record (`columnsize=0`): only
-- ranking reads it, and search orders by id. Rebuilding takes a few seconds per million
-- messages, once (2.6 s for a million 64-byte messages here).
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0',
    columnsize = 0
);
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE kind < 2;

-- The triggers keep the index in step for messages at or below `up_to` only; the writer's
-- batch indexes the rest by their text at that time. (A message stored with an id below
-- `up_to`, as a copy may, is indexed at once.)
DROP TRIGGER messages_fts_insert;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
    WHEN new.kind < 2 AND new.id <= (SELECT up_to FROM search_indexed) BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;

DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, kind ON messages
    WHEN old.id <= (SELECT up_to FROM search_indexed) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body)
        SELECT 'delete', old.id, old.body WHERE old.kind < 2;
    INSERT INTO messages_fts (rowid, body) SELECT new.id, new.body WHERE new.kind < 2;
END;

DROP TRIGGER messages_fts_delete;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.kind < 2 AND old.id <= (SELECT up_to FROM search_indexed) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
