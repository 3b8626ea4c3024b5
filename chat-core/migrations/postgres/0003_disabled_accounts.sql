-- Version 2: accounts a server operator disabled (they cannot log in or resume).
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
