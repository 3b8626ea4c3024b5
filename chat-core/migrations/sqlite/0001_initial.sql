-- The whole durable state. Integers are i64; u64 values (ids, client message ids) are stored
-- bit for bit. Conversations are rooms (room_name set) or direct conversations (user_a, user_b).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    name_key      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE convs (
    id          INTEGER PRIMARY KEY,
    room_name   TEXT UNIQUE,
    invite_only INTEGER NOT NULL DEFAULT 0,
    user_a      INTEGER,
    user_b      INTEGER,
    created_at  INTEGER NOT NULL
);

-- A member sees the conversation's messages with ids above `since`.
CREATE TABLE members (
    user_id INTEGER NOT NULL,
    conv_id INTEGER NOT NULL,
    since   INTEGER NOT NULL,
    PRIMARY KEY (user_id, conv_id)
) WITHOUT ROWID;

-- Each device's delivery position: the highest message id it acknowledged.
CREATE TABLE devices (
    id        INTEGER PRIMARY KEY,
    user_id   INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    cursor    INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);

-- Session tokens, by SHA-256 hash only.
CREATE TABLE tokens (
    hash       BLOB    PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    device_id  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    conv_id       INTEGER NOT NULL,
    sender        INTEGER NOT NULL,
    device        INTEGER NOT NULL,
    client_msg_id INTEGER NOT NULL,
    sent_at       INTEGER NOT NULL,
    body          TEXT    NOT NULL
);

-- Resends: one client message id per sender.
CREATE UNIQUE INDEX messages_dedup ON messages (sender, client_msg_id);
-- Backlog and history: a conversation's messages in id order.
CREATE INDEX messages_conv ON messages (conv_id, id);
