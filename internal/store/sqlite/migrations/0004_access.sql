-- Principals, policies and the hash-chained audit log (access control).
-- Lists (policies, identities) are JSON arrays of strings.

CREATE TABLE policies (
	name       TEXT NOT NULL PRIMARY KEY,
	document   BLOB NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE principals (
	name       TEXT    NOT NULL PRIMARY KEY,
	kind       TEXT    NOT NULL,
	policies   TEXT    NOT NULL,
	identities TEXT    NOT NULL,
	disabled   INTEGER NOT NULL,
	created_at TEXT    NOT NULL,
	updated_at TEXT    NOT NULL
) STRICT;

-- Which principal uses which policy, so that a policy in use cannot be
-- deleted from under it.
CREATE TABLE principal_policies (
	principal TEXT NOT NULL REFERENCES principals (name) ON DELETE CASCADE,
	policy    TEXT NOT NULL REFERENCES policies (name),
	PRIMARY KEY (principal, policy)
) STRICT;
CREATE INDEX principal_policies_policy ON principal_policies (policy);

CREATE INDEX tokens_principal ON tokens (principal);

-- seq is assigned by the store as the last seq + 1, never by SQLite, so a
-- row slipped in or taken out shows as a break in the chain.
CREATE TABLE audit (
	seq        INTEGER NOT NULL PRIMARY KEY,
	at         TEXT    NOT NULL,
	actor      TEXT    NOT NULL,
	action     TEXT    NOT NULL,
	resource   TEXT    NOT NULL,
	decision   TEXT    NOT NULL,
	outcome    TEXT    NOT NULL,
	request_id TEXT    NOT NULL,
	source     TEXT    NOT NULL,
	detail     TEXT    NOT NULL,
	prev_hash  BLOB,
	hash       BLOB    NOT NULL
) STRICT;
CREATE INDEX audit_at ON audit (at);
