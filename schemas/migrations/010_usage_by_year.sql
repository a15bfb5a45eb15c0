-- The usage API's copies read across a month's end in one part: the daily rollup ordered by value and the weekly
-- bounds, partitioned by year instead of by month.
--
-- A range of 7 or 30 days almost always spans two months, so with monthly partitions every value the usage API reads
-- by value (services/console/usage.py) is two index ranges, one per part, and ranking the weekly bounds aggregates two
-- parts. Measured at 10 M interactions, merged, on chDB (bench/README.md): the candidates of a 30-day ranking 27 ms
-- of CPU with monthly parts, 19 ms with yearly ones; a week's bounds 29-32 ms against 14-18 ms. The copies are small
-- (a row per value and day, per value and week), so a year's part stays small to merge.
--
-- Both are rebuilt from warden.usage_daily, the daily rollup ordered by time (006), which holds the same sums: every
-- one of these tables is fed by the hourly rollup's inserts. Dropping and rebuilding makes the migration safe to run
-- again after a failure part-way (nothing is counted twice by a second run), and reads 1.6 M rows at 10 M
-- interactions instead of the hourly rollup's 9.2 M. As with 006 and 007, a batch stored while this migration runs
-- (after the views exist, before the backfill reads) is counted twice; one stored between dropping the old view and
-- making the new one is in warden.usage_daily, so it is not lost. A usage question asked while it runs may find the
-- copies missing or partly filled (9 s at 10 M interactions).

DROP VIEW IF EXISTS warden.usage_daily_by_value_mv;

DROP TABLE IF EXISTS warden.usage_daily_by_value;

CREATE TABLE warden.usage_daily_by_value AS warden.usage_daily
ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
ORDER BY (dimension, value, day)
SETTINGS index_granularity = 256, min_compress_block_size = 4096;

CREATE MATERIALIZED VIEW warden.usage_daily_by_value_mv TO warden.usage_daily_by_value AS
SELECT dimension, value, toStartOfDay(hour) AS day, requests, errors, input_tokens, output_tokens, cached_tokens,
    cache_write_tokens, reasoning_tokens, cost_usd, unpriced, estimated
FROM warden.usage_hourly;

DROP VIEW IF EXISTS warden.usage_weekly_mv;

DROP TABLE IF EXISTS warden.usage_weekly;

CREATE TABLE warden.usage_weekly
(
    dimension LowCardinality(String),
    value String,
    week DateTime('UTC'),
    requests SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(week)
ORDER BY (dimension, week, value);

CREATE MATERIALIZED VIEW warden.usage_weekly_mv TO warden.usage_weekly AS
SELECT dimension, value, toDateTime(toMonday(hour), 'UTC') AS week, requests, cost_usd
FROM warden.usage_hourly;

-- Backfill, in blocks and unaggregated (the merges fold the rows), so memory stays at a block.
INSERT INTO warden.usage_daily_by_value
SELECT dimension, value, day, requests, errors, input_tokens, output_tokens, cached_tokens, cache_write_tokens,
    reasoning_tokens, cost_usd, unpriced, estimated
FROM warden.usage_daily;

INSERT INTO warden.usage_weekly
SELECT dimension, value, toDateTime(toMonday(day), 'UTC') AS week, requests, cost_usd
FROM warden.usage_daily;
