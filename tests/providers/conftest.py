"""Fixtures of the provider tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.providers.rewrites import Replay


@pytest.fixture(scope="session")
def replay() -> Iterator[Replay]:
    """A local server that answers an official SDK with chosen bytes."""
    with Replay() as server:
        yield server
