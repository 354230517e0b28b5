-- 0001_init: Trustgate's first schema.
--
-- Conventions (see the package documentation of internal/store/sqlite):
--   * Times are TEXT in the fixed-width form 'YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ'
--     (UTC, nanoseconds), so they compare and sort as strings, cover the whole
--     X.509 range up to 9999-12-31 (RFC 5280 section 4.1.2.5) and round-trip
--     exactly. The zero time.Time is '0001-01-01T00:00:00.000000000Z'.
--   * Booleans are INTEGER 0 or 1.
--   * A DER column is NULL for a nil slice and X'' for an empty one.
--   * An empty CA reference ('' in Go) is NULL, so that foreign keys hold.

CREATE TABLE cas (
	id              TEXT    NOT NULL PRIMARY KEY,
	name            TEXT    NOT NULL UNIQUE,
	parent_id       TEXT    REFERENCES cas (id),
	external_parent INTEGER NOT NULL,
	state           TEXT    NOT NULL,
	key_type        TEXT    NOT NULL,
	sealed_key      BLOB,
	csr_der         BLOB,
	cert_der        BLOB,
	chain_der       BLOB,
	subject         TEXT    NOT NULL,
	depth           INTEGER NOT NULL,
	path_len        INTEGER NOT NULL,
	key_exported    INTEGER NOT NULL,
	not_before      TEXT    NOT NULL,
	not_after       TEXT    NOT NULL,
	created_at      TEXT    NOT NULL,
	updated_at      TEXT    NOT NULL
) STRICT;

CREATE INDEX cas_parent_id ON cas (parent_id);

-- seq is the rowid: AUTOINCREMENT keeps it from ever being reused, so it is a
-- stable pagination cursor even if rows are one day deleted.
CREATE TABLE certificates (
	seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	issuer_key  TEXT    NOT NULL,
	serial      TEXT    NOT NULL,
	ca_id       TEXT    REFERENCES cas (id),
	subject     TEXT    NOT NULL,
	-- The SANs, each followed by a newline and the whole preceded by one:
	-- '\ndns:a.example\nip:10.0.0.1\n' ('' for none). instr() finds a
	-- substring of one SAN without any pattern characters.
	sans        TEXT    NOT NULL,
	profile     TEXT    NOT NULL,
	key_type    TEXT    NOT NULL,
	not_before  TEXT    NOT NULL,
	not_after   TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	der         BLOB,
	requester   TEXT    NOT NULL,
	imported    INTEGER NOT NULL,
	managed     INTEGER NOT NULL,
	created_at  TEXT    NOT NULL,
	revoked_at  TEXT    NOT NULL,
	reason      INTEGER NOT NULL,
	UNIQUE (issuer_key, serial)
) STRICT;

-- Every index ends in seq (explicitly or as the implicit rowid) so that
-- keyset pagination, WHERE ... AND seq > ? ORDER BY seq LIMIT n, is a range
-- scan that never sorts.
CREATE INDEX certificates_ca_id_seq  ON certificates (ca_id, seq);
CREATE INDEX certificates_status_seq ON certificates (status, seq);
CREATE INDEX certificates_not_after  ON certificates (not_after);
CREATE INDEX certificates_serial     ON certificates (serial);

CREATE TABLE tokens (
	id         TEXT    NOT NULL PRIMARY KEY,
	principal  TEXT    NOT NULL,
	hash       BLOB    NOT NULL UNIQUE,
	created_at TEXT    NOT NULL,
	expires_at TEXT    NOT NULL,
	revoked    INTEGER NOT NULL
) STRICT;

CREATE TABLE meta (
	key   TEXT NOT NULL PRIMARY KEY,
	value BLOB
) STRICT;
