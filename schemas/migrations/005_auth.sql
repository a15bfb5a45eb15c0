-- How each interaction authenticated (auth: warden_key, provider_key, none, refused) and the prefix of the Warden
-- key it presented (never the key). Both halves carry them, like the attribution columns; rows written before this
-- migration read as ''.
ALTER TABLE warden.interactions ADD COLUMN IF NOT EXISTS auth SimpleAggregateFunction(any, LowCardinality(String));

ALTER TABLE warden.interactions ADD COLUMN IF NOT EXISTS key_prefix SimpleAggregateFunction(any, String);

-- The detail's copy keeps each row whole: its view's query gains the two columns in place (one ALTER, so no insert
-- passes between an old view and a new one). Rows copied before keep their JSON without them.
ALTER TABLE warden.interactions_by_id_mv MODIFY QUERY
SELECT interaction_id, started_at, agent_id, if(status IS NULL, whole, NULL) AS request_row,
    if(status IS NULL, NULL, whole) AS response_row
FROM (
    SELECT interaction_id, started_at, agent_id, status, formatRowNoNewline('JSONEachRow',
        interaction_id, started_at, agent_id, user_id, session_id, profile_id, provider, model, route, stream,
        request_received, request_sent, request_decisions, untrusted_since, status, finished_at, latency_ms, ttft_ms,
        input_tokens, output_tokens, cached_tokens, finish_reason, response_body, tool_calls, blocked_tool_calls,
        response_decisions, blocked, error, aborted, auth, key_prefix) AS whole
    FROM warden.interactions
);
