-- The usage API's physical layout: the groups of a range are chosen from coarse bounds, and their buckets read by
-- value.
--
-- 006's rollups are ordered by (dimension, hour, value): reading a range is cheap, reading one value's buckets is not
-- (its rows are spread over every hour of the range), and ranking every value of a busy dimension over a month reads
-- a row per value and day (1.7 million for 50,000 users). 007 adds:
-- - the same rollups ordered by (dimension, value, time), so the buckets of the chosen groups are a few index ranges
--   (granules of 256 rows and compressed blocks from 4 KiB, not 8,192 rows and 64 KiB: a value's range is a few
--   dozen rows, and what is read and decompressed for it is a whole granule and block, in every part);
-- - per week (Monday) and per month, only what ranking needs (requests and cost), so the API bounds each value's
--   spend over a range from the few weeks or months that cover it, checks the groups it keeps against those
--   bounds, and reads the range itself only when the bounds cannot decide (services/console/usage.py).
-- All four are fed by the hourly rollup's own inserts (views on 006's target table), so they count exactly what it
-- counts; rows are copied unaggregated and fold in the background merges (sums of sums). As with 006's backfill, a
-- batch stored while this migration runs (after the views exist, before the backfill reads) is counted twice.

-- The columns of 006's rollups, ordered by value.
CREATE TABLE IF NOT EXISTS warden.usage_hourly_by_value AS warden.usage_hourly
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (dimension, value, hour)
SETTINGS index_granularity = 256, min_compress_block_size = 4096;

CREATE TABLE IF NOT EXISTS warden.usage_daily_by_value AS warden.usage_daily
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (dimension, value, day)
SETTINGS index_granularity = 256, min_compress_block_size = 4096;

-- A sum over the weeks (months) that cover a range bounds the sum over the range: costs are never negative (prices
-- are validated >= 0).
CREATE TABLE IF NOT EXISTS warden.usage_weekly
(
    dimension LowCardinality(String),
    value String,
    week DateTime('UTC'),
    requests SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(week)
ORDER BY (dimension, week, value);

CREATE TABLE IF NOT EXISTS warden.usage_monthly
(
    dimension LowCardinality(String),
    value String,
    month DateTime('UTC'),
    requests SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(month)
ORDER BY (dimension, month, value);

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.usage_hourly_by_value_mv TO warden.usage_hourly_by_value AS
SELECT dimension, value, hour, requests, errors, input_tokens, output_tokens, cached_tokens, cache_write_tokens,
    reasoning_tokens, cost_usd, unpriced, estimated
FROM warden.usage_hourly;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.usage_daily_by_value_mv TO warden.usage_daily_by_value AS
SELECT dimension, value, toStartOfDay(hour) AS day, requests, errors, input_tokens, output_tokens, cached_tokens,
    cache_write_tokens, reasoning_tokens, cost_usd, unpriced, estimated
FROM warden.usage_hourly;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.usage_weekly_mv TO warden.usage_weekly AS
SELECT dimension, value, toDateTime(toMonday(hour), 'UTC') AS week, requests, cost_usd
FROM warden.usage_hourly;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.usage_monthly_mv TO warden.usage_monthly AS
SELECT dimension, value, toDateTime(toStartOfMonth(hour), 'UTC') AS month, requests, cost_usd
FROM warden.usage_hourly;

-- Backfill from the hourly rollup as it stands (it holds every interaction counted so far, 006's own backfill
-- included): read in blocks and written unaggregated, so memory stays at a block whatever the store holds; the
-- merges fold the rows.
INSERT INTO warden.usage_hourly_by_value
SELECT dimension, value, hour, requests, errors, input_tokens, output_tokens, cached_tokens, cache_write_tokens,
    reasoning_tokens, cost_usd, unpriced, estimated
FROM warden.usage_hourly;

INSERT INTO warden.usage_daily_by_value
SELECT dimension, value, toStartOfDay(hour) AS day, requests, errors, input_tokens, output_tokens, cached_tokens,
    cache_write_tokens, reasoning_tokens, cost_usd, unpriced, estimated
FROM warden.usage_hourly;

INSERT INTO warden.usage_weekly
SELECT dimension, value, toDateTime(toMonday(hour), 'UTC') AS week, requests, cost_usd
FROM warden.usage_hourly;

INSERT INTO warden.usage_monthly
SELECT dimension, value, toDateTime(toStartOfMonth(hour), 'UTC') AS month, requests, cost_usd
FROM warden.usage_hourly;
