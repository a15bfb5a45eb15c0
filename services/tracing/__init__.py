"""Tracing: turns the events of each interaction into OpenTelemetry spans, after the fact and off the hot path."""
