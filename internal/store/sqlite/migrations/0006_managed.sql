-- 0006_managed: managed renewal and CA rotation.
--
-- The conventions of 0001_init.sql hold.

-- The renewal of a certificate: claimed_at is set by one conditional
-- upsert, so that of several nodes racing to renew one certificate exactly
-- one holds the claim; successor is the serial of the certificate that
-- replaced it ('' while the renewal is claimed but not done).
CREATE TABLE certificate_renewals (
	ca_id      TEXT NOT NULL REFERENCES cas (id),
	serial     TEXT NOT NULL,
	claimed_at TEXT NOT NULL,
	successor  TEXT NOT NULL,
	renewed_at TEXT NOT NULL,
	PRIMARY KEY (ca_id, serial)
) STRICT;

-- Which CA took over issuance from which: a chain of generations. Both
-- columns are unique, so a CA is rotated once and succeeds at most one.
CREATE TABLE ca_successors (
	ca_id        TEXT NOT NULL PRIMARY KEY REFERENCES cas (id),
	successor_id TEXT NOT NULL UNIQUE REFERENCES cas (id),
	rotated_at   TEXT NOT NULL
) STRICT;

-- Managed renewal lists managed, active certificates in seq order.
CREATE INDEX certificates_managed ON certificates (seq) WHERE managed = 1 AND status = 'active';
