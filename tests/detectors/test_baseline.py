from __future__ import annotations

from datetime import timedelta

import numpy as np
from world import START, after, frame, row, us, world

from detectors.baseline import Baselines, learn
from detectors.events import HOUR_US


def test_online_updates_end_where_learning_everything_at_once_ends(history):
    ts = history.ts_us
    start = us(START + timedelta(days=30))
    half = int(np.searchsorted(ts, start))
    day = 24 * HOUR_US
    end = start + (int(ts[-1]) - start) // day * day + day
    whole = learn(history, until_us=end)
    stepwise = learn(history.slice(0, half), until_us=start)
    for lo in range(start, end, day):
        a, b = np.searchsorted(ts, [lo, lo + day])
        stepwise.update(history.slice(int(a), int(b)), (lo, lo + day))
    for name in whole.names:
        assert dict(whole.to_rows([name])) == dict(stepwise.to_rows([name])), name


def test_batches_shorter_than_an_hour_add_to_their_hour(history):
    ts = history.ts_us
    start = us(START + timedelta(days=30))
    half = int(np.searchsorted(ts, start))
    end = start + 24 * HOUR_US
    hourly = learn(history.slice(0, half), until_us=start)
    short = learn(history.slice(0, half), until_us=start)
    step = HOUR_US // 4
    for lo in range(start, end, HOUR_US):
        a, b = np.searchsorted(ts, [lo, lo + HOUR_US])
        hourly.update(history.slice(int(a), int(b)), (lo, lo + HOUR_US))
    for lo in range(start, end, step):
        a, b = np.searchsorted(ts, [lo, lo + step])
        # every quarter hour holds back its first event and learns it a quarter later
        if b - a > 1:
            short.update(history.slice(int(a) + 1, int(b)), (lo, lo + step))
            short.update(history.slice(int(a), int(a) + 1), (lo, lo + step))
        else:
            short.update(history.slice(int(a), int(b)), (lo, lo + step))
    assert np.array_equal(hourly.ring, short.ring)
    assert hourly.ring.sum() > 0


def test_round_trip_through_documents(trained):
    again = Baselines.from_rows(trained.to_rows(), **trained.meta())
    assert again.to_rows() == trained.to_rows()
    assert again.accessors == trained.accessors and again.net_users == trained.net_users


def test_documents_hold_names_never_values(trained):
    body = b"".join(body for _, body in trained.to_rows())
    assert b"secret/orders/db" in body and b"hmac" not in body


def test_excluded_events_count_as_activity_but_teach_nothing(trained):
    r = trained.index["orders/orders-api"]
    f = frame([row("orders/orders-api", after(3), "secret/payments/db", ip="185.1.2.3")])
    trained.update(f, exclude=np.ones(len(f), bool))
    assert trained.last_us[r] == us(after(3))
    assert "secret/payments/db" not in trained.secrets[r]
    assert "185.1.2.0/24" not in trained.nets[r]
    trained.update(f)
    assert "secret/payments/db" in trained.secrets[r] and "185.1.2.0/24" in trained.nets[r]


def test_silent_hours_are_zero_in_the_rate_history(trained):
    r = trained.index["orders/orders-api"]
    hour = us(after(10)) // HOUR_US
    assert trained.rate_ref(r, hour)[0] > 0
    week = 7 * 24 * HOUR_US
    for w in range(8):  # eight silent weeks
        start = us(after(0)) + w * week
        trained.update(frame([]), (start, start + week))
    assert trained.rate_ref(r, hour) == (0, 0)


def test_cold_start(trained):
    rows = trained.ids(np.array(["orders/orders-api", "nobody"]))
    assert list(trained.warm(rows, us(after(0)), 7, 14)) == [True, False]
    assert list(trained.warm(rows, us(after(0)), 7, 90)) == [False, False]


def test_usage_is_smoothed_over_neighbouring_hours(trained):
    r = trained.index["alice"]
    monday = 0
    assert trained.usage(r, monday + 12, us(after(0)))[0] > 0.9
    assert trained.usage(r, monday + 3, us(after(0)))[0] == 0
    # 16:00 is her last hour; 17:00 borders it, 18:00 does not.
    assert trained.usage(r, monday + 17, us(after(0)))[0] > 0.1
    assert trained.usage(r, monday + 18, us(after(0)))[0] == 0


def test_new_identities_grow_every_array():
    base = learn(frame(world(days=3)))
    n = len(base)
    base.update(frame([row("newcomer", after(1))]))
    assert len(base) == n + 1
    r = base.index["newcomer"]
    assert base.how_weeks.shape[0] == base.ring.shape[0] == n + 1 and base.events[r] == 1
