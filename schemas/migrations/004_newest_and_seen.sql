-- Two more read-side copies of warden.interactions, for the two questions the copies of 003 answer by scanning
-- every row: the newest interactions with neither agent nor user fixed (the page /logs opens on), and the
-- recently seen agents, users, profiles, providers and models (the filter form's suggestions).
--
-- The list columns sorted by time: the newest interactions are the tail of the sort order, read backwards a few
-- granules deep (ORDER BY started_at DESC … LIMIT reads in order) instead of sorting the keys of every row. Filters
-- on profile, provider, model or session without an agent or user read the same tail until a page is found. Folds
-- like the copies of 003; agent_id and user_id join the sorting key after the columns that decide the order (they
-- are the same in every row of an interaction), the primary key stays the two that do.
CREATE TABLE IF NOT EXISTS warden.interactions_by_time
(
    started_at DateTime64(6, 'UTC'),
    interaction_id UUID,
    agent_id String,
    user_id String,
    session_id SimpleAggregateFunction(any, String),
    profile_id SimpleAggregateFunction(any, LowCardinality(String)),
    provider SimpleAggregateFunction(any, LowCardinality(String)),
    model SimpleAggregateFunction(any, LowCardinality(String)),
    route SimpleAggregateFunction(anyLast, Nullable(String)),
    stream SimpleAggregateFunction(anyLast, Nullable(UInt8)),
    untrusted_since SimpleAggregateFunction(anyLast, Nullable(String)),
    status SimpleAggregateFunction(anyLast, Nullable(UInt16)),
    finished_at SimpleAggregateFunction(anyLast, Nullable(DateTime64(6, 'UTC'))),
    latency_ms SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ttft_ms SimpleAggregateFunction(anyLast, Nullable(Float64)),
    input_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    output_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    cached_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    finish_reason SimpleAggregateFunction(anyLast, Nullable(String)),
    blocked SimpleAggregateFunction(max, UInt8),
    error SimpleAggregateFunction(anyLast, Nullable(String)),
    aborted SimpleAggregateFunction(anyLast, Nullable(UInt8)),
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(started_at)
PRIMARY KEY (started_at, interaction_id)
ORDER BY (started_at, interaction_id, agent_id, user_id)
SETTINGS index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 65536;

-- The last time each value of an attribution column was seen: one row per (attribute, value) once merged, a few
-- thousand rows where warden.interactions has millions. The view groups each insert block before writing, so a
-- batch of the logger adds one row per distinct value in it, not one per interaction.
CREATE TABLE IF NOT EXISTS warden.seen_values
(
    attribute LowCardinality(String),
    value String,
    last_seen SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (attribute, value);

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interactions_by_time_mv TO warden.interactions_by_time AS
SELECT started_at, interaction_id, agent_id, user_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted
FROM warden.interactions;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.seen_values_mv TO warden.seen_values AS
SELECT pair.1 AS attribute, pair.2 AS value, max(started_at) AS last_seen
FROM warden.interactions
ARRAY JOIN [('agent_id', toString(agent_id)), ('user_id', toString(user_id)), ('profile_id', toString(profile_id)),
    ('provider', toString(provider)), ('model', toString(model))] AS pair
WHERE pair.2 != ''
GROUP BY attribute, value;

-- Backfill: the rows written before the views existed. A row written while this runs may arrive both ways; both
-- tables fold it like any repeated insert.
INSERT INTO warden.interactions_by_time (
    started_at, interaction_id, agent_id, user_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted
)
SELECT started_at, interaction_id, agent_id, user_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted
FROM warden.interactions;

INSERT INTO warden.seen_values (attribute, value, last_seen)
SELECT pair.1 AS attribute, pair.2 AS value, max(started_at) AS last_seen
FROM warden.interactions
ARRAY JOIN [('agent_id', toString(agent_id)), ('user_id', toString(user_id)), ('profile_id', toString(profile_id)),
    ('provider', toString(provider)), ('model', toString(model))] AS pair
WHERE pair.2 != ''
GROUP BY attribute, value;
