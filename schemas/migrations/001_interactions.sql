-- One logical row per interaction. The request event and the response event each insert the columns they know;
-- AggregatingMergeTree folds them into one row (anyLast skips NULLs), so an in-flight request is visible before it
-- finishes, and a retried insert of the same event collapses instead of doubling. Read with FINAL.
-- Sorted by agent then time, newest-first scans per agent read a narrow range; user_id and interaction_id lookups
-- use bloom-filter skip indexes. Attribution columns are the same in both events; `any` keeps them.
CREATE TABLE IF NOT EXISTS warden.interactions
(
    interaction_id UUID,
    started_at DateTime64(6, 'UTC'),
    agent_id String,
    user_id SimpleAggregateFunction(any, String),
    session_id SimpleAggregateFunction(any, String),
    profile_id SimpleAggregateFunction(any, LowCardinality(String)),
    provider SimpleAggregateFunction(any, LowCardinality(String)),
    model SimpleAggregateFunction(any, LowCardinality(String)),
    route SimpleAggregateFunction(anyLast, Nullable(String)),
    stream SimpleAggregateFunction(anyLast, Nullable(UInt8)),
    request_received SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    request_sent SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    request_decisions SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    untrusted_since SimpleAggregateFunction(anyLast, Nullable(String)),
    status SimpleAggregateFunction(anyLast, Nullable(UInt16)),
    finished_at SimpleAggregateFunction(anyLast, Nullable(DateTime64(6, 'UTC'))),
    latency_ms SimpleAggregateFunction(anyLast, Nullable(Float64)),
    ttft_ms SimpleAggregateFunction(anyLast, Nullable(Float64)),
    input_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    output_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    cached_tokens SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    finish_reason SimpleAggregateFunction(anyLast, Nullable(String)),
    response_body SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    tool_calls SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    blocked_tool_calls SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    response_decisions SimpleAggregateFunction(anyLast, Nullable(String)) CODEC(ZSTD(3)),
    blocked SimpleAggregateFunction(max, UInt8),
    error SimpleAggregateFunction(anyLast, Nullable(String)),
    aborted SimpleAggregateFunction(anyLast, Nullable(UInt8)),
    INDEX idx_user user_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_id interaction_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (agent_id, started_at, interaction_id)
SETTINGS non_replicated_deduplication_window = 1000;
