-- Version 2: room topics (empty: none).
ALTER TABLE convs ADD COLUMN topic TEXT NOT NULL DEFAULT '';
