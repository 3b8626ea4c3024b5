-- Version 2: edits and deletions. A row is a message (kind 0: as sent, 1: edited, 2: deleted,
-- its body erased) or a change to one that takes its id from the same sequence (kind 3: an
-- edit of `target`, body = the new text, erased if the target is deleted later; kind 4: a
-- deletion of `target` by its author, 5: a redaction by a moderator, body = the reason).
ALTER TABLE messages ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN target INTEGER;

-- Resends are recognised among messages only: changes carry no client message id of their own.
DROP INDEX messages_dedup;
CREATE UNIQUE INDEX messages_dedup ON messages (sender, client_msg_id) WHERE kind < 3;
-- The edits of a message, to erase them with it.
CREATE INDEX messages_target ON messages (target) WHERE target IS NOT NULL;
