"""Windowed counters with limits, shared by every process that enforces one budget or rate limit."""
