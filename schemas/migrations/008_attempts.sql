-- Every request sent upstream for an interaction: for a request a model alias routes, each attempt of its retries
-- and fallbacks (deployment, model sent, status, latency, error class, and which one answered), else the one request
-- when tracing followed it. JSON, written by the response half; NULL when there is nothing to say (most rows).
ALTER TABLE warden.interactions
    ADD COLUMN IF NOT EXISTS upstream_attempts SimpleAggregateFunction(anyLast, Nullable(String));

-- The detail reads them from a copy of their own, sorted by id (a point lookup like the detail's copy), so the
-- detail's copy and its view stay as they are. Only interactions that have attempts are copied.
CREATE TABLE IF NOT EXISTS warden.interaction_attempts
(
    interaction_id UUID,
    started_at DateTime64(6, 'UTC'),
    attempts String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (interaction_id, started_at)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interaction_attempts_mv TO warden.interaction_attempts AS
SELECT interaction_id, started_at, assumeNotNull(upstream_attempts) AS attempts
FROM warden.interactions
WHERE upstream_attempts IS NOT NULL;
