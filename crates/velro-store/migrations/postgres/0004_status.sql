-- The status page: per-minute component samples (the uptime history) and incidents with their
-- timelines. `minute` is minutes since the epoch (UTC), so a day is `minute / 1440` in both
-- dialects.

-- One row per (component, minute), whatever the number of instances: each instance upserts its
-- judgement and the row keeps the worst state (with that state's reason), so a minute counts
-- once and an outage seen by any instance is not hidden by the others.
CREATE TABLE status_samples (
    component text    NOT NULL,
    minute    bigint  NOT NULL,
    state     integer NOT NULL,
    reason    text    NOT NULL,
    PRIMARY KEY (component, minute)
);

CREATE INDEX status_samples_minute_idx ON status_samples (minute);

CREATE TABLE incidents (
    incident_id         uuid        NOT NULL PRIMARY KEY,
    title               text        NOT NULL,
    status              text        NOT NULL,
    impact              text        NOT NULL,
    -- Component names joined by commas (a closed set without commas).
    components          text        NOT NULL,
    expected_resolution timestamptz,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    resolved_at         timestamptz
);

CREATE INDEX incidents_created_at_idx ON incidents (created_at DESC);

CREATE TABLE incident_updates (
    update_id   uuid        NOT NULL PRIMARY KEY,
    incident_id uuid        NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    status      text        NOT NULL,
    message     text        NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE INDEX incident_updates_incident_id_idx ON incident_updates (incident_id, created_at DESC);
