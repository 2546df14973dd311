-- The status page: per-minute component samples (the uptime history) and incidents with their
-- timelines. Times are INTEGER unix microseconds like everywhere else; `minute` is minutes since
-- the epoch (UTC), so a day is `minute / 1440` in both dialects.

-- One row per (component, minute), whatever the number of instances: each instance upserts its
-- judgement and the row keeps the worst state (with that state's reason), so a minute counts
-- once and an outage seen by any instance is not hidden by the others.
CREATE TABLE status_samples (
    component TEXT    NOT NULL,
    minute    INTEGER NOT NULL,
    state     INTEGER NOT NULL,
    reason    TEXT    NOT NULL,
    PRIMARY KEY (component, minute)
) STRICT;

CREATE INDEX status_samples_minute_idx ON status_samples (minute);

CREATE TABLE incidents (
    incident_id         BLOB    NOT NULL PRIMARY KEY,
    title               TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    impact              TEXT    NOT NULL,
    -- Component names joined by commas (a closed set without commas).
    components          TEXT    NOT NULL,
    expected_resolution INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    resolved_at         INTEGER
) STRICT;

CREATE INDEX incidents_created_at_idx ON incidents (created_at DESC);

CREATE TABLE incident_updates (
    update_id   BLOB    NOT NULL PRIMARY KEY,
    incident_id BLOB    NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    status      TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX incident_updates_incident_id_idx ON incident_updates (incident_id, created_at DESC);
