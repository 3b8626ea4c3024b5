-- Version 2: room roles and sanctions, server operators, the moderation audit log.

-- A user's standing in a room; only standings other than a plain member are kept.
-- role: 0 member, 1 moderator, 2 owner.
CREATE TABLE standings (
    conv_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    role    INTEGER NOT NULL,
    banned  INTEGER NOT NULL,
    muted   INTEGER NOT NULL,
    PRIMARY KEY (conv_id, user_id)
) WITHOUT ROWID;

-- Server operators may moderate every room.
CREATE TABLE operators (
    user_id INTEGER PRIMARY KEY
);

-- Every moderation action. action: 0 kicked, 1 banned, 2 unbanned, 3 muted, 4 unmuted,
-- 5 opped, 6 deopped.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    conv_id   INTEGER NOT NULL,
    actor     INTEGER NOT NULL,
    target    INTEGER NOT NULL,
    action    INTEGER NOT NULL,
    reason    TEXT    NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX audit_log_conv ON audit_log (conv_id, id);
