-- Version 2: read markers and search. (Numbered after 0005 on main, which holds the disabled
-- accounts of another branch; a gap is harmless.)

-- How far each user has read each conversation: the newest message read. Never lowered.
CREATE TABLE read_markers (
    user_id INTEGER NOT NULL,
    conv_id INTEGER NOT NULL,
    up_to   INTEGER NOT NULL,
    PRIMARY KEY (user_id, conv_id)
) WITHOUT ROWID;

-- Full-text search over the messages (kind 0 and 1: as sent, edited), by their latest text.
-- The text stays in `messages` alone (external content); the index holds words and ids. The
-- triggers keep it in step with every insert, edit and deletion; a message deleted (kind 2,
-- its body erased) leaves the index, and with `secure-delete` its words are removed from the
-- index's pages rather than only marked deleted. Words are runs of letters and digits, lower
-- cased, accents kept (as the hub's `names::words` and PostgreSQL's index see them).
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0'
);
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE kind < 2;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind < 2 BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, kind ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body)
        SELECT 'delete', old.id, old.body WHERE old.kind < 2;
    INSERT INTO messages_fts (rowid, body) SELECT new.id, new.body WHERE new.kind < 2;
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.kind < 2 BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
