-- The keys of the interactions with an outcome worth filtering for, laid out for the lists that filter on it: the
-- viewer's "errors" (status >= 400 or an error), a status class or code from 400 up, and "blocked".
--
-- Status, error and blocked are folded columns (a half alone does not decide them), so a list filtered on them used
-- to read the list copy's range of the agent, user or time (the copies of 003 and 004) row by row for the few rows that
-- match, then fold those (services/console/queries.py). At 10 M interactions with 3 % of them errors, an agent's
-- newest 50 errors meant reading the status and error of the agent's newest ~1,700 interactions in every part of its
-- range: ~50 ms of engine CPU (bench/README.md). Here the matching rows are their own range, read newest first and
-- stopped after a page: the list then folds only those keys from the list copy, as before.
--
-- One table for the three lists: every matching row is copied three times (ARRAY JOIN), under the agent, under the
-- user and under '' (the newest of everything), so each list is one contiguous range (lead, value) sorted by time.
-- A row matches when its half decides the outcome: the response half carries status and error, either half may be
-- the blocked one; a folded interaction passes such a filter only if one of its rows matches, so every interaction a
-- filtered list shows has its key here. The table folds like the copies (AggregatingMergeTree): a retried insert,
-- or a row the backfill and the view both copy, collapses; readers take DISTINCT keys before a merge has.
-- The columns the list's other conditions name (attribution, status, error, blocked) are carried under the same
-- names, so a condition reads the same here as on the copies. Small: about 3.5 % of the rows, three times.
CREATE TABLE IF NOT EXISTS warden.interaction_outcomes
(
    lead LowCardinality(String),
    value String,
    started_at DateTime64(6, 'UTC'),
    interaction_id UUID,
    agent_id String,
    user_id String,
    session_id SimpleAggregateFunction(any, String),
    profile_id SimpleAggregateFunction(any, LowCardinality(String)),
    provider SimpleAggregateFunction(any, LowCardinality(String)),
    model SimpleAggregateFunction(any, LowCardinality(String)),
    status SimpleAggregateFunction(anyLast, Nullable(UInt16)),
    error SimpleAggregateFunction(anyLast, Nullable(String)),
    blocked SimpleAggregateFunction(max, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(started_at)
PRIMARY KEY (lead, value, started_at, interaction_id)
ORDER BY (lead, value, started_at, interaction_id, agent_id, user_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS warden.interaction_outcomes_mv TO warden.interaction_outcomes AS
SELECT pair.1 AS lead, pair.2 AS value, started_at, interaction_id, agent_id, user_id, session_id, profile_id,
    provider, model, status, error, blocked
FROM warden.interactions
ARRAY JOIN [('agent_id', toString(agent_id)), ('user_id', toString(user_id)), ('', '')] AS pair
WHERE status >= 400 OR error IS NOT NULL OR blocked = 1;

-- Backfill: the rows written before the view existed. A row written while this runs, or copied again by a second run
-- after a failure part-way, arrives twice and folds like any repeated insert.
INSERT INTO warden.interaction_outcomes (lead, value, started_at, interaction_id, agent_id, user_id, session_id,
    profile_id, provider, model, status, error, blocked)
SELECT pair.1 AS lead, pair.2 AS value, started_at, interaction_id, agent_id, user_id, session_id, profile_id,
    provider, model, status, error, blocked
FROM warden.interactions
ARRAY JOIN [('agent_id', toString(agent_id)), ('user_id', toString(user_id)), ('', '')] AS pair
WHERE status >= 400 OR error IS NOT NULL OR blocked = 1;
