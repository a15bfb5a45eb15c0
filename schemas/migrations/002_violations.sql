-- Append-only findings of the guard. A redelivered violation has the same violation_id and collapses.
CREATE TABLE IF NOT EXISTS warden.violations
(
    violation_id String,
    interaction_id UUID,
    detected_at DateTime64(6, 'UTC'),
    detector LowCardinality(String),
    category LowCardinality(String),
    severity LowCardinality(String),
    severity_rank UInt8,
    score Float32,
    action LowCardinality(String),
    location String,
    excerpt String,
    profile_id LowCardinality(String),
    agent_id String,
    user_id String,
    INDEX idx_interaction interaction_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(detected_at)
ORDER BY (interaction_id, violation_id)
SETTINGS non_replicated_deduplication_window = 1000;
