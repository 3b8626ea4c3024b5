-- One direct conversation per pair of users, as the hub keeps it: with several nodes, two may
-- open the same pair's conversation at once; the second commit then adopts the first's
-- (chat_hub::Committed::adopted) instead of keeping a second conversation.
CREATE UNIQUE INDEX convs_direct ON convs (user_a, user_b) WHERE user_a IS NOT NULL;
