-- The whole durable state, as in migrations/sqlite. Integers are BIGINT; u64 values (ids,
-- client message ids) are stored bit for bit. Conversations are rooms (room_name set) or
-- direct conversations (user_a, user_b).

CREATE TABLE users (
    id            BIGINT  PRIMARY KEY,
    name          TEXT    NOT NULL,
    name_key      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE convs (
    id          BIGINT  PRIMARY KEY,
    room_name   TEXT    UNIQUE,
    invite_only BOOLEAN NOT NULL DEFAULT FALSE,
    user_a      BIGINT,
    user_b      BIGINT,
    created_at  BIGINT  NOT NULL
);

-- A member sees the conversation's messages with ids above `since`.
CREATE TABLE members (
    user_id BIGINT NOT NULL,
    conv_id BIGINT NOT NULL,
    since   BIGINT NOT NULL,
    PRIMARY KEY (user_id, conv_id)
);

-- Each device's delivery position: the highest message id it acknowledged.
CREATE TABLE devices (
    id        BIGINT PRIMARY KEY,
    user_id   BIGINT NOT NULL,
    name      TEXT   NOT NULL,
    cursor    BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);

-- Session tokens, by SHA-256 hash only.
CREATE TABLE tokens (
    hash       BYTEA  PRIMARY KEY,
    user_id    BIGINT NOT NULL,
    device_id  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE messages (
    id            BIGINT PRIMARY KEY,
    conv_id       BIGINT NOT NULL,
    sender        BIGINT NOT NULL,
    device        BIGINT NOT NULL,
    client_msg_id BIGINT NOT NULL,
    sent_at       BIGINT NOT NULL,
    body          TEXT   NOT NULL
);

-- Resends: one client message id per sender.
CREATE UNIQUE INDEX messages_dedup ON messages (sender, client_msg_id);
-- Backlog and history: a conversation's messages in id order.
CREATE INDEX messages_conv ON messages (conv_id, id);
-- Forgetting a device forgets its tokens.
CREATE INDEX tokens_device ON tokens (device_id);
