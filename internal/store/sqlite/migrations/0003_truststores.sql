-- 0003_truststores: named, versioned trust stores and their members.
--
-- The conventions of 0001_init.sql hold. Members are kept in the order they
-- were added: the implicit rowid of each member table.

CREATE TABLE truststores (
	id         TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL UNIQUE,
	-- 1 at creation, one more with every change; the change and the bump
	-- commit together.
	version    INTEGER NOT NULL CHECK (version >= 1),
	created_at TEXT    NOT NULL,
	updated_at TEXT    NOT NULL
) STRICT;

-- References to CAs of this Trustgate.
CREATE TABLE truststore_cas (
	truststore_id TEXT NOT NULL REFERENCES truststores (id),
	ca_id         TEXT NOT NULL REFERENCES cas (id),
	added_at      TEXT NOT NULL,
	PRIMARY KEY (truststore_id, ca_id)
) STRICT;

-- External CA certificates; fingerprint is the lower-case hex SHA-256 of der.
CREATE TABLE truststore_certs (
	truststore_id TEXT NOT NULL REFERENCES truststores (id),
	fingerprint   TEXT NOT NULL,
	der           BLOB,
	added_at      TEXT NOT NULL,
	PRIMARY KEY (truststore_id, fingerprint)
) STRICT;

-- External CRL sources: an uploaded CRL (der) or a URL ('' for an upload).
-- key names the issuer and scope (or the URL) and is unique in a store.
CREATE TABLE truststore_crls (
	id            TEXT NOT NULL PRIMARY KEY,
	truststore_id TEXT NOT NULL REFERENCES truststores (id),
	key           TEXT NOT NULL,
	url           TEXT NOT NULL,
	der           BLOB,
	issuer_ref    TEXT NOT NULL,
	number        TEXT NOT NULL,
	this_update   TEXT NOT NULL,
	next_update   TEXT NOT NULL,
	added_at      TEXT NOT NULL,
	UNIQUE (truststore_id, key)
) STRICT;
