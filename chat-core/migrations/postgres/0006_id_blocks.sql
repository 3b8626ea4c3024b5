-- Users, conversations and devices are numbered by the hub, from a block of ids its node
-- takes at every start (chat_hub::IdBlock): `PgStore::snapshot` takes n = nextval('id_blocks')
-- and the hub assigns ids n * 2^32 .. (n + 1) * 2^32 - 1, so nodes sharing this database never
-- hand out the same id. The sequence starts above the block of every id stored before; a
-- block past 2^53 (n >= 2^21) is refused by `PgStore` (ids must stay exact JavaScript numbers).
CREATE SEQUENCE id_blocks AS BIGINT MINVALUE 1 NO CYCLE;
SELECT setval('id_blocks',
              GREATEST((SELECT coalesce(max(id), 0) FROM users),
                       (SELECT coalesce(max(id), 0) FROM convs),
                       (SELECT coalesce(max(id), 0) FROM devices)) / 4294967296 + 1,
              false);
