-- Version 2, as migrations/sqlite 0006: read markers and search. (Numbered after 0003 on
-- main, which holds the disabled accounts of another branch; a gap is harmless.)

-- How far each user has read each conversation: the newest message read. Never lowered.
CREATE TABLE read_markers (
    user_id BIGINT NOT NULL,
    conv_id BIGINT NOT NULL,
    up_to   BIGINT NOT NULL,
    PRIMARY KEY (user_id, conv_id)
);

-- Full-text search over the messages (kind 0 and 1: as sent, edited), by their latest text.
-- `search` holds the words of the body as the server splits them (`chat_hub::names::words`:
-- runs of letters and digits, lower cased), written by the server with every insert, edit and
-- deletion (NULL for changes and deleted messages) through `array_to_tsvector`, so no text is
-- parsed here; a GIN index finds them. Rows from before this migration are split below by
-- PostgreSQL's parser over the body with ASCII punctuation blanked, which agrees on ordinary
-- text.
ALTER TABLE messages ADD COLUMN search tsvector;
UPDATE messages SET search = to_tsvector('simple', translate(body, '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', '                                ')) WHERE kind < 2;
CREATE INDEX messages_search ON messages USING GIN (search) WHERE kind < 2;
