-- What each profile's traffic spent per hour, by agent, user and Warden key together: what budgets count. At start
-- the counters of the budgets in force are filled from it (a day's, a week's, a month's or all time's spend of each
-- agent, user or key in a profile), so spend survives a restart. One row per (profile, hour, agent, user, key)
-- once merged. Filled from the response half of each interaction, like the usage rollup; the hour is the
-- interaction's start, which is the window admission counted it in.
CREATE TABLE IF NOT EXISTS warden.spend_hourly
(
    profile_id String,
    hour DateTime('UTC'),
    agent_id String,
    user_id String,
    key_prefix String,
    requests SimpleAggregateFunction(sum, UInt64),
    tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (profile_id, hour, agent_id, user_id, key_prefix);

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.spend_hourly_mv TO warden.spend_hourly AS
SELECT profile_id, toStartOfHour(at) AS hour, agent_id, user_id, key_prefix, count() AS requests,
    sum(ifNull(prompt, 0) + ifNull(answer, 0)) AS tokens, sum(ifNull(usd, 0)) AS cost_usd
FROM (
    -- Renamed: an alias equal to a source column's name would make the aggregate read itself.
    SELECT profile_id, started_at AS at, agent_id, user_id, key_prefix, input_tokens AS prompt,
        output_tokens AS answer, cost_usd AS usd
    FROM warden.interactions
    WHERE status IS NOT NULL
)
GROUP BY profile_id, hour, agent_id, user_id, key_prefix;

-- Backfill: the interactions that ended before the rollup existed, each once (folded).
INSERT INTO warden.spend_hourly
SELECT profile_id, toStartOfHour(at) AS hour, agent_id, user_id, key_prefix, count() AS requests,
    sum(ifNull(prompt, 0) + ifNull(answer, 0)) AS tokens, sum(ifNull(usd, 0)) AS cost_usd
FROM (
    SELECT profile_id, started_at AS at, agent_id, user_id, key_prefix, input_tokens AS prompt,
        output_tokens AS answer, cost_usd AS usd
    FROM warden.interactions FINAL
    WHERE status IS NOT NULL
)
GROUP BY profile_id, hour, agent_id, user_id, key_prefix;
