-- Spend: what each interaction cost, and a rollup of usage for the usage API.
--
-- warden.interactions gains the token counts priced apart (cache writes, reasoning) and the cost the ingress worked
-- out from them: the total, its parts, whether the tokens were estimated (a stream that reported no usage) and a note
-- (where the prices came from, or why the cost is unknown: cost_usd NULL, never 0).
ALTER TABLE warden.interactions
    ADD COLUMN IF NOT EXISTS cache_write_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    ADD COLUMN IF NOT EXISTS reasoning_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    ADD COLUMN IF NOT EXISTS cost_usd SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ADD COLUMN IF NOT EXISTS cost_input_usd SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ADD COLUMN IF NOT EXISTS cost_cached_usd SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ADD COLUMN IF NOT EXISTS cost_cache_write_usd SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ADD COLUMN IF NOT EXISTS cost_output_usd SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ADD COLUMN IF NOT EXISTS cost_reasoning_usd SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ADD COLUMN IF NOT EXISTS cost_estimated SimpleAggregateFunction(anyLast, Nullable(UInt8)),
    ADD COLUMN IF NOT EXISTS cost_note SimpleAggregateFunction(anyLast, Nullable(String));

-- The list copies show the cost on each row; the detail copy keeps every column of the record.
ALTER TABLE warden.interactions_by_agent
    ADD COLUMN IF NOT EXISTS cost_usd SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ADD COLUMN IF NOT EXISTS cost_estimated SimpleAggregateFunction(anyLast, Nullable(UInt8));

ALTER TABLE warden.interactions_by_user
    ADD COLUMN IF NOT EXISTS cost_usd SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ADD COLUMN IF NOT EXISTS cost_estimated SimpleAggregateFunction(anyLast, Nullable(UInt8));

ALTER TABLE warden.interactions_by_time
    ADD COLUMN IF NOT EXISTS cost_usd SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ADD COLUMN IF NOT EXISTS cost_estimated SimpleAggregateFunction(anyLast, Nullable(UInt8));

-- The views are made again with the new columns (a view's query cannot be altered on every engine version).
DROP VIEW IF EXISTS warden.interactions_by_agent_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interactions_by_agent_mv TO warden.interactions_by_agent AS
SELECT agent_id, started_at, interaction_id, user_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted, cost_usd, cost_estimated
FROM warden.interactions;

DROP VIEW IF EXISTS warden.interactions_by_user_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interactions_by_user_mv TO warden.interactions_by_user AS
SELECT user_id, started_at, interaction_id, agent_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted, cost_usd, cost_estimated
FROM warden.interactions;

DROP VIEW IF EXISTS warden.interactions_by_time_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interactions_by_time_mv TO warden.interactions_by_time AS
SELECT started_at, interaction_id, agent_id, user_id, session_id, profile_id, provider, model, route, stream,
    untrusted_since, status, finished_at, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    finish_reason, blocked, error, aborted, cost_usd, cost_estimated
FROM warden.interactions;

DROP VIEW IF EXISTS warden.interactions_by_id_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interactions_by_id_mv TO warden.interactions_by_id AS
SELECT interaction_id, started_at, agent_id, if(status IS NULL, whole, NULL) AS request_row,
    if(status IS NULL, NULL, whole) AS response_row
FROM (
    SELECT interaction_id, started_at, agent_id, status, formatRowNoNewline('JSONEachRow',
        interaction_id, started_at, agent_id, user_id, session_id, profile_id, provider, model, route, stream,
        request_received, request_sent, request_decisions, untrusted_since, status, finished_at, latency_ms, ttft_ms,
        input_tokens, output_tokens, cached_tokens, finish_reason, response_body, tool_calls, blocked_tool_calls,
        response_decisions, blocked, error, aborted, cache_write_tokens, reasoning_tokens, cost_usd, cost_input_usd,
        cost_cached_usd, cost_cache_write_usd, cost_output_usd, cost_reasoning_usd, cost_estimated, cost_note, auth,
        key_prefix) AS whole
    FROM warden.interactions
);

-- Usage per hour and per value of each attribution column the usage API groups by: one row per (column, value,
-- hour) once merged, so a month of one agent is 720 rows however many interactions it made. Filled from the
-- response half of each interaction (it carries the attribution, the status, the tokens and the cost): an
-- interaction is counted once, when it ends. An insert the record deduplicates (a retried batch) is not counted
-- again; a response event delivered twice in different batches is (the record folds it, a sum cannot).
-- unpriced: answers that reported tokens but whose cost is unknown (no price for the model).
CREATE TABLE IF NOT EXISTS warden.usage_hourly
(
    dimension LowCardinality(String),
    value String,
    hour DateTime('UTC'),
    requests SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    cached_tokens SimpleAggregateFunction(sum, UInt64),
    cache_write_tokens SimpleAggregateFunction(sum, UInt64),
    reasoning_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64),
    unpriced SimpleAggregateFunction(sum, UInt64),
    estimated SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (dimension, hour, value);

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.usage_hourly_mv TO warden.usage_hourly AS
SELECT pair.1 AS dimension, pair.2 AS value, toStartOfHour(at) AS hour, count() AS requests,
    countIf(code >= 400) AS errors, sum(ifNull(prompt, 0)) AS input_tokens, sum(ifNull(answer, 0)) AS output_tokens,
    sum(ifNull(cached, 0)) AS cached_tokens, sum(ifNull(written, 0)) AS cache_write_tokens,
    sum(ifNull(reasoning, 0)) AS reasoning_tokens, sum(ifNull(usd, 0)) AS cost_usd,
    countIf(usd IS NULL AND (prompt IS NOT NULL OR answer IS NOT NULL)) AS unpriced,
    countIf(guessed = 1) AS estimated
FROM (
    -- Renamed: an alias equal to a source column's name would make the aggregate read itself.
    SELECT started_at AS at, status AS code, input_tokens AS prompt, output_tokens AS answer, cached_tokens AS cached,
        cache_write_tokens AS written, reasoning_tokens AS reasoning, cost_usd AS usd, cost_estimated AS guessed,
        -- A Warden key by its prefix (the record's only trace of it); an interaction that presented none is in no
        -- key's group.
        arrayFilter(p -> p.1 != 'key' OR p.2 != '', [('agent_id', agent_id), ('user_id', user_id), ('model', model),
            ('profile_id', profile_id), ('provider', provider), ('key', key_prefix)]) AS pairs
    FROM warden.interactions
    WHERE status IS NOT NULL
)
ARRAY JOIN pairs AS pair
GROUP BY dimension, value, hour;

-- The same per day, for buckets of a day or more: a month of one user is 30 rows instead of 720. Fed by the hourly
-- rollup's own inserts (a view on a view's target table), so the record is read once per insert.
CREATE TABLE IF NOT EXISTS warden.usage_daily
(
    dimension LowCardinality(String),
    value String,
    day DateTime('UTC'),
    requests SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    cached_tokens SimpleAggregateFunction(sum, UInt64),
    cache_write_tokens SimpleAggregateFunction(sum, UInt64),
    reasoning_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64),
    unpriced SimpleAggregateFunction(sum, UInt64),
    estimated SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (dimension, day, value);

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.usage_daily_mv TO warden.usage_daily AS
SELECT dimension, value, toStartOfDay(at) AS day, sum(n) AS requests, sum(failed) AS errors,
    sum(prompt) AS input_tokens, sum(answer) AS output_tokens, sum(cached) AS cached_tokens,
    sum(written) AS cache_write_tokens, sum(reasoning) AS reasoning_tokens, sum(usd) AS cost_usd,
    sum(unknown) AS unpriced, sum(guessed) AS estimated
FROM (
    -- Renamed: an alias equal to a source column's name would make the aggregate read itself.
    SELECT dimension, value, hour AS at, requests AS n, errors AS failed, input_tokens AS prompt,
        output_tokens AS answer, cached_tokens AS cached, cache_write_tokens AS written,
        reasoning_tokens AS reasoning, cost_usd AS usd, unpriced AS unknown, estimated AS guessed
    FROM warden.usage_hourly
)
GROUP BY dimension, value, day;

-- Backfill: the interactions that ended before the rollup existed, each once (folded); the daily rollup
-- takes them from the hourly one's insert.
INSERT INTO warden.usage_hourly
SELECT pair.1 AS dimension, pair.2 AS value, toStartOfHour(at) AS hour, count() AS requests,
    countIf(code >= 400) AS errors, sum(ifNull(prompt, 0)) AS input_tokens, sum(ifNull(answer, 0)) AS output_tokens,
    sum(ifNull(cached, 0)) AS cached_tokens, sum(ifNull(written, 0)) AS cache_write_tokens,
    sum(ifNull(reasoning, 0)) AS reasoning_tokens, sum(ifNull(usd, 0)) AS cost_usd,
    countIf(usd IS NULL AND (prompt IS NOT NULL OR answer IS NOT NULL)) AS unpriced,
    countIf(guessed = 1) AS estimated
FROM (
    -- Renamed: an alias equal to a source column's name would make the aggregate read itself.
    SELECT started_at AS at, status AS code, input_tokens AS prompt, output_tokens AS answer, cached_tokens AS cached,
        cache_write_tokens AS written, reasoning_tokens AS reasoning, cost_usd AS usd, cost_estimated AS guessed,
        -- A Warden key by its prefix (the record's only trace of it); an interaction that presented none is in no
        -- key's group.
        arrayFilter(p -> p.1 != 'key' OR p.2 != '', [('agent_id', agent_id), ('user_id', user_id), ('model', model),
            ('profile_id', profile_id), ('provider', provider), ('key', key_prefix)]) AS pairs
    FROM warden.interactions FINAL
    WHERE status IS NOT NULL
)
ARRAY JOIN pairs AS pair
GROUP BY dimension, value, hour;
