-- 0006_access_generation: one number that every change to principals,
-- policies, the links between them and API tokens moves, in the change's
-- own transaction (the meaning of the SQLite store's migration 0007).
CREATE TABLE access_generation (
	id  integer NOT NULL PRIMARY KEY CHECK (id = 1),
	gen bigint  NOT NULL
);
INSERT INTO access_generation (id, gen) VALUES (1, 0);

CREATE FUNCTION bump_access_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE access_generation SET gen = gen + 1 WHERE id = 1;
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
