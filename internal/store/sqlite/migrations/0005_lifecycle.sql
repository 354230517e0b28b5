-- 0005_lifecycle: lifecycle automation (bootstrap tokens for enrolment).
--
-- The conventions of 0001_init.sql hold; SANs are encoded as in
-- certificates.sans.

-- One-time enrolment credentials. Only the SHA-256 of the secret is kept.
-- uses counts up to max_uses in one conditional UPDATE, so concurrent
-- enrolments cannot spend one use twice.
CREATE TABLE bootstrap_tokens (
	id           TEXT    NOT NULL PRIMARY KEY,
	name         TEXT    NOT NULL,
	hash         BLOB    NOT NULL UNIQUE,
	ca_id        TEXT    NOT NULL REFERENCES cas (id),
	profile      TEXT    NOT NULL,
	sans         TEXT    NOT NULL,
	-- nanoseconds; 0 leaves the profile's cap
	max_validity INTEGER NOT NULL CHECK (max_validity >= 0),
	max_uses     INTEGER NOT NULL CHECK (max_uses >= 1),
	uses         INTEGER NOT NULL CHECK (uses >= 0 AND uses <= max_uses),
	created_by   TEXT    NOT NULL,
	created_at   TEXT    NOT NULL,
	expires_at   TEXT    NOT NULL,
	revoked      INTEGER NOT NULL
) STRICT;

CREATE INDEX bootstrap_tokens_ca_id ON bootstrap_tokens (ca_id);

-- The outbox of lifecycle events. key makes an event happen once (an
-- expiry threshold crossed, a renewal); id is what receivers deduplicate by.
CREATE TABLE events (
	id         TEXT NOT NULL PRIMARY KEY,
	key        TEXT NOT NULL UNIQUE,
	type       TEXT NOT NULL,
	payload    BLOB NOT NULL,
	created_at TEXT NOT NULL
) STRICT;

-- One row per event and webhook, written with the event; delivered is set
-- once the webhook answered 2xx, so that a restart delivers what was left.
CREATE TABLE event_deliveries (
	event_id     TEXT    NOT NULL REFERENCES events (id),
	webhook      TEXT    NOT NULL,
	attempts     INTEGER NOT NULL,
	next_attempt TEXT    NOT NULL,
	last_error   TEXT    NOT NULL,
	delivered    INTEGER NOT NULL,
	delivered_at TEXT    NOT NULL,
	PRIMARY KEY (event_id, webhook)
) STRICT;

CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt) WHERE delivered = 0;
