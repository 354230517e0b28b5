-- 0001_init: Trustgate's PostgreSQL schema, the meaning of the SQLite
-- schema (internal/store/sqlite/migrations, versions 1 and 2) in native
-- PostgreSQL types.
--
-- Conventions:
--   * Times are timestamptz: microseconds, stored as UTC instants. The zero
--     time.Time is stored as 0001-01-01 00:00:00+00 (not NULL), so every
--     time column is NOT NULL and compares as the Go value does. The store
--     accepts years 0000 to 9999 only, as the SQLite store does, although
--     timestamptz holds more.
--   * A bytea column is NULL for a nil slice and '' for an empty one.
--   * An empty CA reference ('' in Go) is NULL, so that foreign keys hold.
--   * Columns compared as opaque keys (IDs, serials, issuer keys) use the
--     "C" collation: byte order, whatever the database's default collation,
--     and the cheapest comparisons.
--   * Counters and small numbers are integer; the store refuses Go values
--     outside its range (fault.Invalid) before they reach the server.

CREATE TABLE cas (
	id              text COLLATE "C" NOT NULL PRIMARY KEY,
	name            text        NOT NULL UNIQUE,
	parent_id       text COLLATE "C" REFERENCES cas (id),
	external_parent boolean     NOT NULL,
	state           text        NOT NULL,
	key_type        text        NOT NULL,
	sealed_key      bytea,
	csr_der         bytea,
	cert_der        bytea,
	chain_der       bytea,
	subject         text        NOT NULL,
	depth           integer     NOT NULL,
	path_len        integer     NOT NULL,
	key_exported    boolean     NOT NULL,
	-- How many partition CRLs the CA publishes; 0 or 1 is one CRL. Fixed at
	-- creation.
	crl_partitions  integer     NOT NULL CHECK (crl_partitions >= 0),
	not_before      timestamptz NOT NULL,
	not_after       timestamptz NOT NULL,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	-- Insertion order, the tie-break of ListCAs among equal created_at (the
	-- role SQLite's rowid plays).
	ord             bigint      NOT NULL GENERATED ALWAYS AS IDENTITY UNIQUE
);

CREATE INDEX cas_parent_id ON cas (parent_id);

-- seq is an identity column, never reused, so it is a stable pagination
-- cursor. It is assigned when a row is inserted, not when it commits: see
-- the package documentation for what that means to a walk that runs during
-- concurrent inserts.
CREATE TABLE certificates (
	seq           bigint      NOT NULL GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	issuer_key    text COLLATE "C" NOT NULL,
	serial        text COLLATE "C" NOT NULL,
	ca_id         text COLLATE "C" REFERENCES cas (id),
	subject       text        NOT NULL,
	-- The typed SANs in order ('{}' for none); a SAN filter matches a
	-- substring of one element with strpos, which has no pattern characters.
	sans          text[]      NOT NULL,
	profile       text        NOT NULL,
	key_type      text        NOT NULL,
	not_before    timestamptz NOT NULL,
	not_after     timestamptz NOT NULL,
	fingerprint   text        NOT NULL,
	status        text        NOT NULL,
	der           bytea,
	requester     text        NOT NULL,
	imported      boolean     NOT NULL,
	managed       boolean     NOT NULL,
	created_at    timestamptz NOT NULL,
	revoked_at    timestamptz NOT NULL,
	reason        integer     NOT NULL,
	-- The CRL partition the certificate was assigned at issuance.
	crl_partition integer     NOT NULL CHECK (crl_partition >= 0),
	UNIQUE (issuer_key, serial)
);

-- Every index used by ListCertificates ends in seq so that keyset
-- pagination, WHERE ... AND seq > $1 ORDER BY seq LIMIT n, is a range scan
-- that never sorts.
CREATE INDEX certificates_ca_id_seq  ON certificates (ca_id, seq);
CREATE INDEX certificates_status_seq ON certificates (status, seq);
CREATE INDEX certificates_serial_seq ON certificates (serial, seq);
CREATE INDEX certificates_not_after  ON certificates (not_after);

-- A CRL build reads the revoked certificates of one CA (and partition) in
-- serial order. The partial index holds only revoked rows, so the build never
-- touches active certificates however many there are, and it carries every
-- column the build reads, so a vacuumed table is not read either (an
-- index-only scan). Queries must say status = 'revoked' for the planner to
-- use it.
CREATE INDEX certificates_revoked ON certificates (ca_id, crl_partition, serial)
	INCLUDE (not_after, revoked_at, reason)
	WHERE status = 'revoked';

-- The last CRL number handed out per (CA, partition). RFC 5280 section 5.2.3:
-- the number increases monotonically for each CRL a CA issues, so it is
-- stored, never derived from a clock or a count.
CREATE TABLE crl_numbers (
	ca_id     text COLLATE "C" NOT NULL REFERENCES cas (id),
	partition integer NOT NULL CHECK (partition >= 0),
	number    bigint  NOT NULL,
	PRIMARY KEY (ca_id, partition)
);

CREATE TABLE tokens (
	id         text COLLATE "C" NOT NULL PRIMARY KEY,
	principal  text        NOT NULL,
	hash       bytea       NOT NULL UNIQUE,
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL,
	revoked    boolean     NOT NULL
);

CREATE TABLE meta (
	key   text COLLATE "C" NOT NULL PRIMARY KEY,
	value bytea
);
