"""Waiting for the guard's verdicts on an interaction (it scores after the answer, off the request's path)."""

from __future__ import annotations

import time


def violations_at(warden, interaction_id: str, location: str, categories: set[str]) -> list[dict]:
    """The interaction's violations at ``location``, once one of each category is there (the guard runs after the
    answer; up to 20 s on a loaded machine), else what there is."""
    deadline = time.monotonic() + 20.0
    while True:
        found = [v for v in warden.detail(interaction_id)["violations"] if v["location"] == location]
        if categories <= {v["category"] for v in found} or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
