-- 0003_access: principals, policies and the hash-chained audit log (the
-- meaning of the SQLite store's migration 0004). Lists are JSON arrays.

CREATE TABLE policies (
	name       text COLLATE "C" NOT NULL PRIMARY KEY,
	document   bytea       NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);

CREATE TABLE principals (
	name       text COLLATE "C" NOT NULL PRIMARY KEY,
	kind       text        NOT NULL,
	policies   jsonb       NOT NULL,
	identities jsonb       NOT NULL,
	disabled   boolean     NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);

-- Which principal uses which policy, so that a policy in use cannot be
-- deleted from under it.
CREATE TABLE principal_policies (
	principal text COLLATE "C" NOT NULL REFERENCES principals (name) ON DELETE CASCADE,
	policy    text COLLATE "C" NOT NULL REFERENCES policies (name),
	PRIMARY KEY (principal, policy)
);
CREATE INDEX principal_policies_policy ON principal_policies (policy);

CREATE INDEX tokens_principal ON tokens (principal);

-- seq is assigned by the store, never by a sequence, so a row slipped in
-- or taken out shows as a break in the chain.
CREATE TABLE audit (
	seq        bigint      NOT NULL PRIMARY KEY,
	at         timestamptz NOT NULL,
	actor      text        NOT NULL,
	action     text        NOT NULL,
	resource   text        NOT NULL,
	decision   text        NOT NULL,
	outcome    text        NOT NULL,
	request_id text        NOT NULL,
	source     text        NOT NULL,
	detail     text        NOT NULL,
	prev_hash  bytea,
	hash       bytea       NOT NULL
);
CREATE INDEX audit_at ON audit (at);

-- The chain's head: one row, locked FOR UPDATE by every append, so that
-- appends on all nodes take their turn and each sees the one before.
CREATE TABLE audit_head (
	id   integer NOT NULL PRIMARY KEY CHECK (id = 1),
	seq  bigint  NOT NULL,
	hash bytea
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, NULL);
