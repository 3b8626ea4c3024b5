-- Message ids are numbered at commit (chat_hub::Numbering) from this one row: every
-- transaction that inserts messages or memberships takes its row lock first and moves `last`,
-- so a writer on another node waits, and ids become visible in commit order. No message is
-- then ever committed below an id a device could already have acknowledged.
CREATE TABLE message_seq (
    one  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    last BIGINT  NOT NULL
);
INSERT INTO message_seq (last)
SELECT GREATEST((SELECT coalesce(max(id), 0) FROM messages),
                (SELECT coalesce(max(since), 0) FROM members));
