-- 0002_revocation: CRL partitions, CRL numbers, and an index for CRL builds.
--
-- The conventions of 0001_init.sql hold. Existing rows take the defaults: a
-- CA without partitions (one CRL) and its certificates in partition 0.

-- How many partition CRLs a CA publishes; 0 or 1 is one CRL. Fixed at creation.
ALTER TABLE cas ADD COLUMN crl_partitions INTEGER NOT NULL DEFAULT 0;

-- The CRL partition a certificate was assigned at issuance.
ALTER TABLE certificates ADD COLUMN crl_partition INTEGER NOT NULL DEFAULT 0;

-- The last CRL number handed out per (CA, partition). RFC 5280 section 5.2.3:
-- the number increases monotonically for each CRL a CA issues, so it is
-- stored, never derived from a clock or a count.
CREATE TABLE crl_numbers (
	ca_id     TEXT    NOT NULL REFERENCES cas (id),
	partition INTEGER NOT NULL,
	number    INTEGER NOT NULL,
	PRIMARY KEY (ca_id, partition)
) STRICT, WITHOUT ROWID;

-- A CRL build reads the revoked certificates of one CA (and partition) in
-- serial order. The partial index holds only revoked rows, so the build is a
-- range scan that never touches active certificates however many there are;
-- it covers every column the build reads, so it never touches the table
-- either. Queries must say status = 'revoked' literally for SQLite to use it.
CREATE INDEX certificates_revoked ON certificates
	(ca_id, crl_partition, serial, not_after, revoked_at, reason)
	WHERE status = 'revoked';
