-- Protocol version 2, as migrations/sqlite 0002-0004: room roles and sanctions, server
-- operators, the moderation audit log, edits and deletions, room topics.

-- A user's standing in a room; only standings other than a plain member are kept.
-- role: 0 member, 1 moderator, 2 owner.
CREATE TABLE standings (
    conv_id BIGINT   NOT NULL,
    user_id BIGINT   NOT NULL,
    role    BIGINT   NOT NULL,
    banned  BOOLEAN  NOT NULL,
    muted   BOOLEAN  NOT NULL,
    PRIMARY KEY (conv_id, user_id)
);

-- Server operators may moderate every room.
CREATE TABLE operators (
    user_id BIGINT PRIMARY KEY
);

-- Every moderation action. action: 0 kicked, 1 banned, 2 unbanned, 3 muted, 4 unmuted,
-- 5 opped, 6 deopped, 7 redacted, 8 disabled, 9 enabled (conv_id 0: account actions).
CREATE TABLE audit_log (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conv_id BIGINT NOT NULL,
    actor   BIGINT NOT NULL,
    target  BIGINT NOT NULL,
    action  BIGINT NOT NULL,
    reason  TEXT   NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX audit_log_conv ON audit_log (conv_id, id);

-- A row is a message (kind 0: as sent, 1: edited, 2: deleted, its body erased) or a change to
-- one that takes its id from the same sequence (kind 3: an edit of `target`, body = the new
-- text, erased if the target is deleted later; kind 4: a deletion of `target` by its author,
-- 5: a redaction by a moderator, body = the reason).
ALTER TABLE messages ADD COLUMN kind BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN target BIGINT;

-- Resends are recognised among messages only: changes carry no client message id of their own.
DROP INDEX messages_dedup;
CREATE UNIQUE INDEX messages_dedup ON messages (sender, client_msg_id) WHERE kind < 3;
-- The edits of a message, to erase them with it.
CREATE INDEX messages_target ON messages (target) WHERE target IS NOT NULL;

-- Room topics (empty: none).
ALTER TABLE convs ADD COLUMN topic TEXT NOT NULL DEFAULT '';
