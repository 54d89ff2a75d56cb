from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace

import numpy as np
import pandas as pd

from detectors.events import DAYS, group, prepare


def _one(ts: str, tz: str = "UTC", **extra: str) -> SimpleNamespace:
    f = pd.DataFrame(
        {
            "ts": pd.to_datetime([ts]),
            "secret": [extra.get("secret", "a/b/c")],
            "source_ip": [extra.get("ip")],
            "identity": ["x"],
            "action": ["read"],
            "outcome": ["success"],
            "event_id": ["e"],
            "user_agent": [extra.get("ua", "vault-agent/1.15.2")],
        }
    )
    ev = prepare(f, tz)
    return SimpleNamespace(**{k.name: getattr(ev, k.name)[0] for k in fields(ev)})


def test_hour_of_week_starts_on_monday():
    assert _one("2026-05-04T00:30:00Z").how == 0  # a Monday
    assert _one("2026-05-10T23:59:00Z").how == 167  # the Sunday after


def test_local_time_zone_moves_the_hour_not_the_instant():
    utc = _one("2026-05-04T22:30:00Z")
    berlin = _one("2026-05-04T22:30:00Z", "Europe/Berlin")  # 00:30 on Tuesday there
    assert utc.ts_us == berlin.ts_us and utc.uhour == berlin.uhour
    assert DAYS[berlin.how // 24] == "Tuesday" and berlin.how % 24 == 0


def test_missing_values_become_empty_keys():
    r = _one("2026-05-04T10:00:00Z", secret=None)
    assert r.secret == "" and r.net == "" and r.area == "" and not r.access


def test_client_family_drops_versions():
    assert _one("2026-05-04T10:00:00Z").client == "vault-agent"
    assert _one("2026-05-04T10:00:00Z", ua="").client == ""


def test_empty_frame():
    f = pd.DataFrame(
        {
            c: pd.Series(dtype=object)
            for c in ("secret", "source_ip", "identity", "action", "outcome", "event_id")
        }
    )
    f["ts"] = pd.Series(dtype="datetime64[us, UTC]")
    ev = prepare(f)
    assert len(ev) == 0 and len(ev.slice(0, 0)) == 0 and ev.how.dtype == "int64"


def test_group_splits_positions_by_key():
    keys = np.array([5, 3, 5, 9, 3])
    assert [list(g) for g in group(keys, np.array([0, 1, 2, 4]))] == [[1, 4], [0, 2]]
    assert group(keys, np.array([], dtype=np.int64)) == []
