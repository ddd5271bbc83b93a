"""Pure CSAT rules: when a rating may still change, and how ratings add up in a report."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

# A visitor who changes their mind may re-rate for this long after their first rating; then it is final.
EDIT_WINDOW = timedelta(hours=24)
SCORES = (1, 2, 3, 4, 5)
# A widget opened again (a reload, a later visit) still asks for the rating of a resolution this recent.
PROMPT_WINDOW = timedelta(days=7)


def should_prompt(*, status: str, resolved_at: datetime | None, rated: bool, enabled: bool, now: datetime) -> bool:
    """Ask the customer to rate their latest conversation: resolved, not rated yet, recently, CSAT on."""
    return (enabled and status == "resolved" and resolved_at is not None and not rated
            and now - resolved_at <= PROMPT_WINDOW)


def may_update(first_rated_at: datetime, now: datetime) -> bool:
    return now - first_rated_at <= EDIT_WINDOW


def period_of(at: datetime, period: str) -> str:
    """UTC calendar day (2026-11-22), ISO week (2026-W47) or month (2026-11)."""
    if period == "day":
        return at.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    return at.strftime("%Y-%m")


def summarise(ratings: Iterable[int]) -> tuple[int, str | None, dict[str, int]]:
    """(count, average as a 2-place decimal string or None, distribution by score)."""
    distribution = {str(score): 0 for score in SCORES}
    total = count = 0
    for rating in ratings:
        distribution[str(rating)] += 1
        total += rating
        count += 1
    if not count:
        return 0, None, distribution
    average = (Decimal(total) / Decimal(count)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return count, str(average), distribution
