"""A profile with a budget and a rate limit at every scope it can have without a key, set far above what a benchmark
run spends, so every request pays for admission (plan, price, reserve, settle) and none is refused:
``overhead.py --data-dir DIR --profile-id LIMITS_PROFILE_ID`` after ``python bench/limits_profile.py DIR``.

See bench/README.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

LIMITS_PROFILE_ID = "7e1d2c3b-4a59-4c68-9d7e-8f9a0b1c2d3e"


def limits_profile() -> dict[str, Any]:
    return {
        "id": LIMITS_PROFILE_ID,
        "name": "bench-budget-and-rate-limit",
        "budgets": [{"scope": "profile", "period": "day", "usd": 1_000_000}],
        "rate_limits": [{"scope": "profile", "requests_per_minute": 100_000_000, "tokens_per_minute": 1_000_000_000}],
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }


def seed(data_dir: Path) -> None:
    """Write the profile where the embedded default keeps profiles, before Warden starts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "profiles.json").write_text(json.dumps({LIMITS_PROFILE_ID: limits_profile()}))


if __name__ == "__main__":
    seed(Path(sys.argv[1]))
    print(LIMITS_PROFILE_ID)
