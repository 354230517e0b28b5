-- 0005_managed: managed renewal and CA rotation; the meaning of the SQLite
-- store's migration 0006. The conventions of 0001_init.sql hold.

-- The renewal of a certificate: claimed_at is set by one conditional
-- upsert, so that of several nodes racing to renew one certificate exactly
-- one holds the claim; successor is the serial of the certificate that
-- replaced it ('' while the renewal is claimed but not done).
CREATE TABLE certificate_renewals (
	ca_id      text COLLATE "C" NOT NULL REFERENCES cas (id),
	serial     text COLLATE "C" NOT NULL,
	claimed_at timestamptz NOT NULL,
	successor  text COLLATE "C" NOT NULL,
	renewed_at timestamptz NOT NULL,
	PRIMARY KEY (ca_id, serial)
);

-- Which CA took over issuance from which: a chain of generations. Both
-- columns are unique, so a CA is rotated once and succeeds at most one.
CREATE TABLE ca_successors (
	ca_id        text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES cas (id),
	successor_id text COLLATE "C" NOT NULL UNIQUE REFERENCES cas (id),
	rotated_at   timestamptz NOT NULL
);

-- Managed renewal lists managed, active certificates in seq order.
CREATE INDEX certificates_managed ON certificates (seq) WHERE managed AND status = 'active';
