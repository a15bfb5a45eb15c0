"""Topic names: the same on Kafka and on the in-process bus."""

REQUESTS = "llm.requests"
RESPONSES = "llm.responses"
VIOLATIONS = "llm.violations"
DEAD_LETTER = "llm.dead-letter"

ALL = (REQUESTS, RESPONSES, VIOLATIONS, DEAD_LETTER)
