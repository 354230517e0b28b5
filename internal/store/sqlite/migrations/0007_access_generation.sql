-- One number that every change to principals, policies, the links between
-- them and API tokens moves, in the change's own transaction, whoever makes
-- it (triggers, not the store's code), so that the access-control service
-- can keep what it read while the number stays the same and still see
-- every change on the next request. The number never comes back: it moves
-- to at least the current time in microseconds, so that after a restore a
-- process never finds again a number it cached something under.
CREATE TABLE access_generation (
	id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	gen INTEGER NOT NULL
) STRICT;
INSERT INTO access_generation (id, gen) VALUES (1, 0);

CREATE TRIGGER principals_insert_generation AFTER INSERT ON principals
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER principals_update_generation AFTER UPDATE ON principals
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER principals_delete_generation AFTER DELETE ON principals
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER principal_policies_insert_generation AFTER INSERT ON principal_policies
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER principal_policies_update_generation AFTER UPDATE ON principal_policies
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER principal_policies_delete_generation AFTER DELETE ON principal_policies
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER policies_insert_generation AFTER INSERT ON policies
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER policies_update_generation AFTER UPDATE ON policies
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER policies_delete_generation AFTER DELETE ON policies
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER tokens_insert_generation AFTER INSERT ON tokens
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER tokens_update_generation AFTER UPDATE ON tokens
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;

CREATE TRIGGER tokens_delete_generation AFTER DELETE ON tokens
BEGIN
	UPDATE access_generation SET gen = max(gen + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1;
END;
