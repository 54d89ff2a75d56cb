"""The alert outbox's rules, written once for both stores (contracts: `Outbox` in
pipeline/store/base.py).

Each rule is a pure function. Elasticsearch applies the functions to the documents it
reads and rewrites. DuckDB applies the same rules inside set-based SQL (one statement per
batch, not a round trip per alert), so the rules it needs there have a `*_sql` twin right
beside them that renders the same rule over column expressions; the twins are checked
against their functions on generated inputs (tests/store/test_outbox_rules.py).

Times are datetimes or, in Elasticsearch documents, ISO text of one format (which orders
like the times it names).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from pipeline.errors import StoreError
from pipeline.store.base import DELIVERY_STATES, RESOLUTIONS, DeliveryOutcome

Moment = TypeVar("Moment", datetime, str)

FIRST_REVISION = 1  # a new alert's own revision (DuckDB: the column's DEFAULT)
SETTLING = ("delivered", "suppressed")  # outcomes after which a sink wants no more
DEAD = "dead"
MAX_ERROR = 2000  # characters of a delivery error kept


# -- checks: a bad value stores nothing ---------------------------------------------------
def check_outcomes(outcomes: Sequence[DeliveryOutcome]) -> None:
    """Raise StoreError naming the first outcome whose state is not a delivery state."""
    for o in outcomes:
        if o.state not in DELIVERY_STATES:
            raise StoreError(
                f"delivery state {o.state!r} of alert {o.alert_id}; valid: "
                + ", ".join(DELIVERY_STATES)
            )


def check_state(state: str | None) -> None:
    if state is not None and state not in DELIVERY_STATES:
        raise StoreError(f"delivery state {state!r}; valid: {', '.join(DELIVERY_STATES)}")


def check_resolution(resolution: str | None) -> None:
    if resolution is not None and resolution not in RESOLUTIONS:
        raise StoreError(f"resolution {resolution!r}; valid: {', '.join(RESOLUTIONS)}")


def check_fold(alert_id: str, into: str | None) -> None:
    if into == alert_id:
        raise StoreError(f"alert {alert_id} cannot be folded into itself")


# -- an alert's revision ------------------------------------------------------------------
def revision(own: int, repeats: int) -> int:
    """An alert's delivery revision: its own (body and verdict changes) plus the repeats
    folded into it, so a fold makes every sink take the open alert again.

    >>> revision(2, 3)
    5
    """
    return own + repeats


def revision_sql(own: str, repeats: str) -> str:
    """`repeats` may be NULL (no fold joined): none."""
    return f"({own} + coalesce({repeats}, 0))"


def upserted_revision(own: int, stored_body: str, body: str) -> int:
    """The own revision of an alert detection writes again: one more only if its body
    changed (an identical alert is no news to the sinks)."""
    return own + 1 if stored_body != body else own


def upserted_revision_sql(own: str, stored_body: str, body: str) -> str:
    return f"CASE WHEN {stored_body} IS DISTINCT FROM {body} THEN {own} + 1 ELSE {own} END"


def resolved_revision(own: int) -> int:
    """An analyst's verdict (or reopening) is always news: one more."""
    return own + 1


def resolved_revision_sql(own: str) -> str:
    return f"{own} + 1"


def verdict(
    resolution: str | None, by: str, note: str | None, now: Moment
) -> tuple[str | None, str | None, Moment | None, str | None]:
    """(resolution, resolved_by, resolved_at, note) after a verdict: who and when only for
    a verdict, not for reopening."""
    return resolution, (by if resolution else None), (now if resolution else None), note


# -- one sink's delivery record -----------------------------------------------------------
def offered(outcome: DeliveryOutcome) -> int:
    """The revision an outcome settles: its own if delivered or suppressed, else none (0)."""
    return outcome.revision if outcome.state in SETTLING else 0


def settled(stored: int, offered: int) -> int:
    """The settled revision never falls: a late outcome of an older revision keeps the
    newer one."""
    return max(stored, offered)


def settled_sql(stored: str, offered: str) -> str:
    return f"greatest({stored}, {offered})"


def delivered_at(kept: Moment | None, state: str, now: Moment) -> Moment | None:
    """The last delivery time: now for a delivery, else the one kept."""
    return now if state == "delivered" else kept


def delivered_at_sql(kept: str, offered: str) -> str:
    """`offered` is `delivered_at(None, state, now)` of the new outcome."""
    return f"coalesce({offered}, {kept})"


def clip_error(error: str | None) -> str | None:
    """A delivery error as stored: at most MAX_ERROR characters, none for empty."""
    return (error or "")[:MAX_ERROR] or None


def effective_state(state: str | None, revision: int, settled: int) -> str | None:
    """What a sink's delivery of an alert stands at: `dead` stays dead (until a redrive),
    a revision above the settled one is `pending` (also before any attempt: no record),
    else the record's `delivered` or `suppressed`."""
    if state == DEAD:
        return DEAD
    if revision > settled:
        return "pending"
    return state


def effective_state_sql(state: str, revision: str, settled: str) -> str:
    return (
        f"CASE WHEN {state} = '{DEAD}' THEN '{DEAD}' "
        f"WHEN {revision} > {settled} THEN 'pending' ELSE {state} END"
    )


def wanted(
    state: str | None, revision: int, settled: int, next_attempt_at: Moment | None, now: Moment
) -> bool:
    """Whether a sink should take an alert now: a revision above the one it settled, not
    dead, and no retry scheduled after `now`."""
    due = next_attempt_at is None or next_attempt_at <= now
    return revision > settled and state != DEAD and due


def wanted_sql(state: str, revision: str, settled: str, next_attempt_at: str, now: str) -> str:
    return (
        f"({revision} > {settled} AND {state} IS DISTINCT FROM '{DEAD}' "
        f"AND ({next_attempt_at} IS NULL OR {next_attempt_at} <= {now}))"
    )


REDRIVEN = {"state": "pending", "attempts": 0, "next_attempt_at": None, "first_failed_at": None}


def redriven(state: str | None) -> dict[str, object] | None:
    """What a redrive changes in a delivery record: a dead one becomes pending with no
    attempts counted and nothing scheduled; any other is left alone (None)."""
    return dict(REDRIVEN) if state == DEAD else None


# -- folding repeats ----------------------------------------------------------------------
def fold_verdict(stored: tuple[str | None] | None, proposed: str | None) -> str | None:
    """The suppression verdict that stands: the one stored first (`(into,)`, into None for
    "not folded"), else the one proposed now. Folding an alert into an open one grows the
    open one's `repeats`, hence its `revision`, by one."""
    return stored[0] if stored is not None else proposed
