-- Version 2, as migrations/sqlite 0005: read markers and search.

-- How far each user has read each conversation: the newest message read. Never lowered.
CREATE TABLE read_markers (
    user_id BIGINT NOT NULL,
    conv_id BIGINT NOT NULL,
    up_to   BIGINT NOT NULL,
    PRIMARY KEY (user_id, conv_id)
);

-- Full-text search over the messages (kind 0 and 1: as sent, edited), by their latest text:
-- a GIN index over the words of the body, computed (so an edit or a deletion, which erases the
-- body, updates it with the row). ASCII punctuation is blanked first, so that the parser's
-- compound tokens (addresses, host names, paths, decimal numbers) become plain words: words
-- are runs of letters and digits, lower cased, as the hub's `names::words` and SQLite's index
-- see them. Queries must use this exact expression (pg_store.rs `SEARCH_VECTOR`).
CREATE INDEX messages_search ON messages USING GIN (
    to_tsvector('simple', translate(body, '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', '                                '))
) WHERE kind < 2;
