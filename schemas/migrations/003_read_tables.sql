-- The read side's own copies of warden.interactions, each laid out for one question the console asks, filled by
-- materialized views on every insert into warden.interactions (the logger's single write) and backfilled below.
-- warden.interactions stays the record analysts query; the console's lists and detail no longer read it.
--
-- Why copies: warden.interactions is sorted by agent with 8192-row granules and its bodies next to its list columns.
-- A user's newest rows are scattered over every agent's range, and a lookup by id reads a whole 8192-row granule of
-- every column it returns (bodies included). Its sorting key and granularity cannot be changed in place.
--
-- Each copy folds an interaction's request row and response row like warden.interactions does (AggregatingMergeTree,
-- the same SimpleAggregateFunction columns), so a retried insert or a backfilled row that the view also copied
-- collapses instead of doubling. Readers fold only the interactions they return (services/console/queries.py), never
-- FINAL over a range. Every column outside the sorting key is an aggregate one (recent ClickHouse refuses others);
-- where a plain column is wanted (agent_id, started_at), it joins the sorting key after the columns that decide
-- the order: it is the same in every row of an interaction, so it changes nothing of what folds.
-- Small granules and compressed blocks: reading one interaction decompresses a few KB per column, not 8192 rows.
--
-- List columns only (no bodies): the newest interactions of an agent (and the lists with neither agent nor user).
CREATE TABLE IF NOT EXISTS warden.interactions_by_agent
(
    agent_id String,
    started_at DateTime64(6, 'UTC'),
    interaction_id UUID,
    user_id SimpleAggregateFunction(any, String),
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
ORDER BY (agent_id, started_at, interaction_id)
SETTINGS index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 65536;

-- The same list columns sorted by user: a user's newest interactions are one contiguous range.
CREATE TABLE IF NOT EXISTS warden.interactions_by_user
(
    user_id String,
    started_at DateTime64(6, 'UTC'),
    interaction_id UUID,
    agent_id String,
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
    aborted SimpleAggregateFunction(anyLast, Nullable(UInt8))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (user_id, started_at, interaction_id, agent_id)
SETTINGS index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 65536;

-- Everything about an interaction, sorted by id: the detail page reads one small granule. Each row of
-- warden.interactions is kept whole as one JSON object (every column, formatRowNoNewline), so a lookup reads one
-- column where it would read 29, each its own file and compressed block: half the time of the lookup. Two columns,
-- so that folding keeps one row of each half: rows with a response (the response half, or both halves written as one
-- row) and rows without (the request half). The reader merges the two objects as the record folds its columns.
CREATE TABLE IF NOT EXISTS warden.interactions_by_id
(
    interaction_id UUID,
    started_at DateTime64(6, 'UTC'),
    agent_id String,
    request_row SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    response_row SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(started_at)
PRIMARY KEY interaction_id
ORDER BY (interaction_id, started_at, agent_id)
SETTINGS index_granularity = 256, index_granularity_bytes = 1048576, min_compress_block_size = 4096,
    max_compress_block_size = 65536;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interactions_by_agent_mv TO warden.interactions_by_agent AS
SELECT agent_id, started_at, interaction_id, user_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted
FROM warden.interactions;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interactions_by_user_mv TO warden.interactions_by_user AS
SELECT user_id, started_at, interaction_id, agent_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted
FROM warden.interactions;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interactions_by_id_mv TO warden.interactions_by_id AS
SELECT interaction_id, started_at, agent_id, if(status IS NULL, whole, NULL) AS request_row,
    if(status IS NULL, NULL, whole) AS response_row
FROM (
    SELECT interaction_id, started_at, agent_id, status, formatRowNoNewline('JSONEachRow',
        interaction_id, started_at, agent_id, user_id, session_id, profile_id, provider, model, route, stream,
        request_received, request_sent, request_decisions, untrusted_since, status, finished_at, latency_ms, ttft_ms,
        input_tokens, output_tokens, cached_tokens, finish_reason, response_body, tool_calls, blocked_tool_calls,
        response_decisions, blocked, error, aborted) AS whole
    FROM warden.interactions
);

-- Backfill: the rows written before the views existed. A row written while this runs may arrive both ways; the
-- copies fold it like any repeated insert.
INSERT INTO warden.interactions_by_agent (
    agent_id, started_at, interaction_id, user_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted
)
SELECT agent_id, started_at, interaction_id, user_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted
FROM warden.interactions;

INSERT INTO warden.interactions_by_user (
    agent_id, started_at, interaction_id, user_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted
)
SELECT agent_id, started_at, interaction_id, user_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted
FROM warden.interactions;

INSERT INTO warden.interactions_by_id (interaction_id, started_at, agent_id, request_row, response_row)
SELECT interaction_id, started_at, agent_id, if(status IS NULL, whole, NULL) AS request_row,
    if(status IS NULL, NULL, whole) AS response_row
FROM (
    SELECT interaction_id, started_at, agent_id, status, formatRowNoNewline('JSONEachRow',
        interaction_id, started_at, agent_id, user_id, session_id, profile_id, provider, model, route, stream,
        request_received, request_sent, request_decisions, untrusted_since, status, finished_at, latency_ms, ttft_ms,
        input_tokens, output_tokens, cached_tokens, finish_reason, response_body, tool_calls, blocked_tool_calls,
        response_decisions, blocked, error, aborted) AS whole
    FROM warden.interactions
);
