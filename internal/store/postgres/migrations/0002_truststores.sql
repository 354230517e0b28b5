-- 0002_truststores: named, versioned trust stores and their members (the
-- meaning of the SQLite store's migration 0003). The conventions of
-- 0001_init.sql hold. Members are kept in the order they were added: the
-- identity column ord of each member table.

CREATE TABLE truststores (
	id         text COLLATE "C" NOT NULL PRIMARY KEY,
	name       text        NOT NULL UNIQUE,
	-- 1 at creation, one more with every change; the change and the bump
	-- commit together.
	version    bigint      NOT NULL CHECK (version >= 1),
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);

-- References to CAs of this Trustgate.
CREATE TABLE truststore_cas (
	truststore_id text COLLATE "C" NOT NULL REFERENCES truststores (id),
	ca_id         text COLLATE "C" NOT NULL REFERENCES cas (id),
	added_at      timestamptz NOT NULL,
	ord           bigint      NOT NULL GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (truststore_id, ca_id)
);

-- The foreign key's reverse lookups.
CREATE INDEX truststore_cas_ca_id ON truststore_cas (ca_id);

-- External CA certificates; fingerprint is the lower-case hex SHA-256 of der.
CREATE TABLE truststore_certs (
	truststore_id text COLLATE "C" NOT NULL REFERENCES truststores (id),
	fingerprint   text COLLATE "C" NOT NULL,
	der           bytea,
	added_at      timestamptz NOT NULL,
	ord           bigint      NOT NULL GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (truststore_id, fingerprint)
);

-- External CRL sources: an uploaded CRL (der) or a URL ('' for an upload).
-- key names the issuer and scope (or the URL) and is unique in a store.
CREATE TABLE truststore_crls (
	id            text COLLATE "C" NOT NULL PRIMARY KEY,
	truststore_id text COLLATE "C" NOT NULL REFERENCES truststores (id),
	key           text COLLATE "C" NOT NULL,
	url           text        NOT NULL,
	der           bytea,
	issuer_ref    text COLLATE "C" NOT NULL,
	number        text        NOT NULL,
	this_update   timestamptz NOT NULL,
	next_update   timestamptz NOT NULL,
	added_at      timestamptz NOT NULL,
	ord           bigint      NOT NULL GENERATED ALWAYS AS IDENTITY,
	UNIQUE (truststore_id, key)
);
