-- 0006_access_generation: one number that every change to principals,
-- policies, the links between them and API tokens moves, in the change's
-- own transaction (the meaning of the SQLite store's migration 0007).
CREATE TABLE access_generation (
	id  integer NOT NULL PRIMARY KEY CHECK (id = 1),
	gen bigint  NOT NULL
);
INSERT INTO access_generation (id, gen) VALUES (1, 0);

-- The number never comes back: it moves to at least the current time in
-- microseconds, so that after a failover to a replica that lost the last
-- changes, or a restore, a node never finds again a number it cached
-- something under. The table is named in the schema of the table that
-- changed, not looked up on the search_path of whoever changes it (an
-- operator in psql, another deployment's schema).
CREATE FUNCTION bump_access_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('UPDATE %I.access_generation SET gen = greatest(gen + 1, '
		'(extract(epoch FROM clock_timestamp()) * 1000000)::bigint) WHERE id = 1', TG_TABLE_SCHEMA);
	RETURN NULL;
END;
$$;

CREATE TRIGGER principals_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON principals
	FOR EACH STATEMENT EXECUTE FUNCTION bump_access_generation();

CREATE TRIGGER principal_policies_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON principal_policies
	FOR EACH STATEMENT EXECUTE FUNCTION bump_access_generation();

CREATE TRIGGER policies_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON policies
	FOR EACH STATEMENT EXECUTE FUNCTION bump_access_generation();

CREATE TRIGGER tokens_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tokens
	FOR EACH STATEMENT EXECUTE FUNCTION bump_access_generation();
