-- 0004_lifecycle: lifecycle automation (bootstrap tokens for enrolment); the
-- meaning of the SQLite store's migration 0005. The conventions of
-- 0001_init.sql hold.

-- One-time enrolment credentials. Only the SHA-256 of the secret is kept.
-- uses counts up to max_uses in one conditional UPDATE, so concurrent
-- enrolments cannot spend one use twice.
CREATE TABLE bootstrap_tokens (
	id           text COLLATE "C" NOT NULL PRIMARY KEY,
	name         text        NOT NULL,
	hash         bytea       NOT NULL UNIQUE,
	ca_id        text COLLATE "C" NOT NULL REFERENCES cas (id),
	profile      text        NOT NULL,
	sans         text[]      NOT NULL,
	-- nanoseconds; 0 leaves the profile's cap
	max_validity bigint      NOT NULL CHECK (max_validity >= 0),
	max_uses     integer     NOT NULL CHECK (max_uses >= 1),
	uses         integer     NOT NULL CHECK (uses >= 0 AND uses <= max_uses),
	created_by   text        NOT NULL,
	created_at   timestamptz NOT NULL,
	expires_at   timestamptz NOT NULL,
	revoked      boolean     NOT NULL
);

CREATE INDEX bootstrap_tokens_ca_id ON bootstrap_tokens (ca_id);

-- The outbox of lifecycle events. key makes an event happen once (an
-- expiry threshold crossed, a renewal); id is what receivers deduplicate by.
CREATE TABLE events (
	id         text COLLATE "C" NOT NULL PRIMARY KEY,
	key        text COLLATE "C" NOT NULL UNIQUE,
	type       text        NOT NULL,
	payload    bytea       NOT NULL,
	created_at timestamptz NOT NULL
);

-- One row per event and webhook, written with the event; delivered is set
-- once the webhook answered 2xx, so that a restart delivers what was left.
CREATE TABLE event_deliveries (
	event_id     text COLLATE "C" NOT NULL REFERENCES events (id),
	webhook      text        NOT NULL,
	attempts     integer     NOT NULL,
	next_attempt timestamptz NOT NULL,
	last_error   text        NOT NULL,
	delivered    boolean     NOT NULL,
	delivered_at timestamptz NOT NULL,
	PRIMARY KEY (event_id, webhook)
);

CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt) WHERE NOT delivered;
