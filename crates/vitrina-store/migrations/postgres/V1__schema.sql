-- Version 1: the event log, users, catalogue, model registry, experiments, API keys and the
-- impression log. Ids and names compare byte by byte (COLLATE "C"), as in SQLite, so that lists
-- ordered by id and prefix ranges are the same on both backends.

-- The event log. `seq` is assigned by the appending transaction while it holds the row lock
-- of `log_head` (ADR 0008), so sequence numbers become visible in commit order, without gaps
-- between commits: a follower reading `seq > N` never skips an event.
CREATE TABLE log_head (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    seq      BIGINT NOT NULL,  -- the highest sequence number ever assigned
    events   BIGINT NOT NULL   -- events in the log now (appends minus deletions)
) WITH (fillfactor = 10);      -- room for its many updates on its own page
-- Every write of `events` (append, erasure, retention) takes this row's lock first; a write
-- that did not would break the ordering above.
INSERT INTO log_head (seq, events) VALUES (0, 0);

CREATE TABLE events (
    seq           BIGINT PRIMARY KEY,
    event_id      TEXT COLLATE "C" NOT NULL UNIQUE,
    user_id       TEXT COLLATE "C" NOT NULL,
    activity_type TEXT NOT NULL,
    product_id    TEXT COLLATE "C",
    metadata      TEXT NOT NULL,
    ts_ms         BIGINT NOT NULL,
    received_ms   BIGINT NOT NULL
);
CREATE INDEX events_by_user ON events (user_id, ts_ms, seq);

CREATE TABLE users (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT,
    attributes  TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE products (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    category    TEXT COLLATE "C" NOT NULL,
    price       TEXT NOT NULL,
    attributes  TEXT NOT NULL,
    in_stock    BOOLEAN NOT NULL,
    hidden      BOOLEAN NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
CREATE INDEX products_by_category ON products (category, id);

CREATE TABLE models (
    version           TEXT COLLATE "C" PRIMARY KEY,
    algorithm         TEXT NOT NULL,
    parameters        TEXT NOT NULL,
    metrics           TEXT NOT NULL,
    status            TEXT NOT NULL,
    status_reason     TEXT,
    first_seq         BIGINT NOT NULL,
    last_seq          BIGINT NOT NULL,
    artefact_path     TEXT,
    artefact_checksum TEXT,
    artefact_bytes    BIGINT,
    created_ms        BIGINT NOT NULL,
    finished_ms       BIGINT,
    activated_ms      BIGINT,
    previous_version  TEXT
);

CREATE TABLE experiments (
    id         TEXT COLLATE "C" PRIMARY KEY,
    doc        TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT,
    scope      TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);

-- Served lists and attributed outcomes. Visitors appear only as keyed pseudonyms (`p:` and 16
-- hex digits; the key is in `meta`), never as their id (ADR 0007).
CREATE TABLE impressions (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recommendation_id TEXT COLLATE "C" NOT NULL UNIQUE,
    user_id           TEXT COLLATE "C" NOT NULL,
    model_version     TEXT NOT NULL,
    variant           TEXT COLLATE "C" NOT NULL,
    created_ms        BIGINT NOT NULL,
    items             TEXT NOT NULL
);
CREATE INDEX impressions_user ON impressions (user_id, created_ms);
CREATE INDEX impressions_variant ON impressions (variant);
CREATE INDEX impressions_created ON impressions (created_ms);

CREATE TABLE outcomes (
    event_id          TEXT COLLATE "C" PRIMARY KEY,
    recommendation_id TEXT COLLATE "C" NOT NULL,
    user_id           TEXT COLLATE "C" NOT NULL,
    variant           TEXT COLLATE "C" NOT NULL,
    product_id        TEXT COLLATE "C" NOT NULL,
    source            TEXT NOT NULL,
    position          INTEGER NOT NULL,
    kind              TEXT NOT NULL,
    value             DOUBLE PRECISION NOT NULL,
    created_ms        BIGINT NOT NULL
);
CREATE INDEX outcomes_user ON outcomes (user_id);
CREATE INDEX outcomes_variant ON outcomes (variant);
CREATE INDEX outcomes_created ON outcomes (created_ms);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
