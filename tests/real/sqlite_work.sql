-- Insert / index / query workload for goheap's real-program tests.
PRAGMA cache_size = -8000;
PRAGMA synchronous = OFF;
PRAGMA journal_mode = MEMORY;
CREATE TABLE item(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, price REAL, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 80000)
INSERT INTO item SELECT x, (x * 7919) % 503, 'name-' || hex(x) || substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26), (x % 1000) / 7.0, zeroblob(x % 700) FROM c;
CREATE INDEX item_grp ON item(grp, price);
CREATE INDEX item_name ON item(name);
CREATE TABLE grp(id INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 502)
INSERT INTO grp SELECT x, printf('group-%04d', x) FROM c;
SELECT count(*), sum(length(blob)), round(sum(price), 3) FROM item;
SELECT g.label, count(*), round(avg(i.price), 4) FROM item i JOIN grp g ON g.id = i.grp GROUP BY g.id ORDER BY count(*) DESC, g.id LIMIT 5;
SELECT name FROM item WHERE name LIKE 'name-3132%' ORDER BY name LIMIT 3;
SELECT grp, price, rank() OVER (PARTITION BY grp ORDER BY price DESC, id) AS r FROM item WHERE grp < 3 ORDER BY grp, r LIMIT 6;
UPDATE item SET name = name || '-updated', blob = zeroblob(1000) WHERE id % 10 = 0;
DELETE FROM item WHERE id % 3 = 0;
SELECT count(*), sum(length(name)), sum(length(blob)) FROM item;
SELECT group_concat(id, ',') FROM (SELECT id FROM item WHERE grp = 17 ORDER BY id LIMIT 20);
CREATE TEMP TABLE t AS SELECT grp, group_concat(name) AS names FROM item GROUP BY grp;
SELECT count(*), max(length(names)) FROM t;
VACUUM;
PRAGMA integrity_check;
