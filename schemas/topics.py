"""Topic names: the same on Kafka and on the in-process bus."""

REQUESTS = "llm.requests"
RESPONSES = "llm.responses"
VIOLATIONS = "llm.violations"
DEAD_LETTER = "llm.dead-letter"

EVENTS = (REQUESTS, RESPONSES, VIOLATIONS, DEAD_LETTER)
PROFILES = "warden.profiles"
"""Compacted: the latest version of every profile, keyed by profile id (a tombstone deletes)."""
QUARANTINES = "warden.quarantines"
"""Compacted: quarantine decisions keyed by profile and agent (a tombstone lifts)."""
KEYS = "warden.keys"
"""Compacted: Warden keys (their hashes, bindings and state) keyed by key id; revoking one is an update, so every
ingress refuses it."""
REVOKED_SESSIONS = "warden.revoked-sessions"
"""Compacted: console login sessions ended by a logout, keyed by session id, until they would have expired."""
PROVIDER_HISTORY = "warden.provider-history"
"""Compacted: what the ingresses remember of the responses they relayed, in buckets keyed by instance and minute (a
tombstone drops an expired bucket)."""
DEPLOYMENTS = "warden.deployments"
"""Compacted: upstream deployments keyed by name (credentials encrypted), written by the admin API."""
MODEL_ALIASES = "warden.model-aliases"
"""Compacted: model aliases keyed by ``provider/model``, written by the admin API."""
