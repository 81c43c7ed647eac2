-- calibration-policy schema 1: the tables of the PostgreSQL store.
-- Each record keeps the file store's JSON as it is (body), plus the columns its queries need.

CREATE TABLE calibration_runs (
    run_id      text PRIMARY KEY,
    underlying  text NOT NULL,
    stamp       text NOT NULL,          -- utc_stamp of the calibration time: the file store's order
    seq         integer NOT NULL,       -- the _<n> a shared stamp gets
    at          timestamptz NOT NULL,
    source      text NOT NULL,
    body        jsonb NOT NULL,
    version     integer NOT NULL DEFAULT 1  -- +1 on every write: optimistic concurrency
);
-- "Latest N of an underlying" and keyset pages, newest or oldest first.
CREATE INDEX calibration_runs_page ON calibration_runs (underlying, stamp, seq, run_id);

CREATE TABLE suggestions (
    suggestion_id text PRIMARY KEY,
    target        text NOT NULL,
    status        text NOT NULL,
    created_at    timestamptz NOT NULL,
    body          jsonb NOT NULL,
    version       integer NOT NULL DEFAULT 1
);
CREATE INDEX suggestions_by_target ON suggestions (target, status);

-- Reviews are kept inside the suggestion's body (approvals, reviewer, notes); this view lists them.
CREATE VIEW reviews AS
    SELECT suggestion_id, target, status, (body ->> 'reviewer') AS reviewer,
           (body ->> 'reviewed_at')::timestamptz AS reviewed_at, body -> 'approvals' AS approvals
    FROM suggestions WHERE status <> 'pending';

CREATE TABLE live_configs (
    target      text PRIMARY KEY,
    snapshot    jsonb NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE config_archive (
    target      text NOT NULL,
    change_id   text NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    status      text NOT NULL,
    at          timestamptz NOT NULL,
    body        jsonb NOT NULL,
    PRIMARY KEY (target, change_id)
);
CREATE INDEX config_archive_order ON config_archive (target, seq);

-- The changes timeline: every archived change of every target, newest first.
CREATE VIEW changes AS
    SELECT target, change_id, at, body ->> 'kind' AS kind, body ->> 'reason' AS reason,
           coalesce(body ->> 'by', body ->> 'actor') AS by_whom, body ->> 'run_id' AS run_id
    FROM config_archive WHERE status = 'committed';

CREATE TABLE change_intents (
    intent_id   text PRIMARY KEY,
    target      text NOT NULL,
    data        jsonb NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX change_intents_by_target ON change_intents (target);

