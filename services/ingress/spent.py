"""What the budgets in force have spent already, read back from the store: the counters a restart fills its table
with, so a budget is not fresh again after a restart.

Read from ``warden.spend_hourly`` (migration 009), by profile and by the budget's scope, from the start of each
budget's current window (calendar windows in UTC start on the hour, so the hourly rollup is exact). Done once at
start, off the request path. Rate-limit counters (a minute each) start from zero.

A key's spend is recorded under its secrets' prefixes: the key's current and still-valid earlier prefixes are
summed (a prefix whose grace period ended is no longer known, and its spend is not counted back).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from plumbing.store.base import Store
from schemas.keys import WardenKey
from schemas.limits import Scope
from schemas.profiles import Profile
from services.ingress import quota

_COLUMNS: dict[Scope, str] = {"agent": "agent_id", "user": "user_id", "key": "key_prefix"}


async def spent(
    store: Store, profiles: Iterable[Profile], keys: Iterable[WardenKey], at: datetime
) -> dict[str, tuple[int, float]]:
    """Counter name → (micro-dollars spent, window end) for every budget of ``profiles`` in the window of ``at``."""
    key_of_prefix = {secret.prefix: key.id for key in keys for secret in key.secrets}
    counts: dict[str, tuple[int, float]] = {}
    for profile in profiles:
        for budget in profile.budgets:
            window = quota.budget_window(budget.period, at)
            column = _COLUMNS.get(budget.scope)
            group = f"{column} AS id" if column else "'' AS id"
            rows = await store.select(
                f"SELECT {group}, sum(cost_usd) AS usd FROM warden.spend_hourly "
                "WHERE profile_id = {profile:String} AND hour >= {since:DateTime('UTC')} GROUP BY id",
                {"profile": profile.id, "since": window.start.strftime("%Y-%m-%d %H:%M:%S")},
            )
            for row in rows:
                ident = row["id"]
                if budget.scope == "key":
                    ident = key_of_prefix.get(ident, "")
                    if not ident:
                        continue
                name = quota.budget_counter_for(profile.id, budget.scope, ident, budget.period, window)
                before = counts.get(name, (0, window.end))[0]
                counts[name] = (before + quota.micro_usd(float(row["usd"] or 0)), window.end)
    return counts
