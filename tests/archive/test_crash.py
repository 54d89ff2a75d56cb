"""kill -9 of a real `secretwatch archive` at every step (the archiver's test hook
$SECRETWATCH_ARCHIVE_CRASH_AFTER makes it SIGKILL itself there), then a re-run: every
event is in exactly one place, hot store or archive, and the chain verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from archive_helpers import DAY0, fill, ids, setup
from typer.testing import CliRunner

from pipeline.archive import layout
from pipeline.archive.archiver import BATCH_ENV, CRASH_ENV, CRASH_STEPS
from pipeline.archive.verify import verify
from pipeline.cli import app

SCRIPT = Path(sys.executable).with_name("secretwatch")
BEFORE = (DAY0 + timedelta(days=3)).isoformat()


def rerun(config: Path) -> tuple[int, str]:
    """The re-run, in-process (the same command; a process start costs seconds here)."""
    result = CliRunner().invoke(app, ["archive", "--before", BEFORE, "-c", str(config)])
    return result.exit_code, result.stderr


def archive(config: Path, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env[BATCH_ENV] = "100"  # a day per batch (90 events): a crash falls mid-run
    if crash is not None:
        env[CRASH_ENV] = crash
    return subprocess.run(  # noqa: S603 - our own console script
        [str(SCRIPT), "archive", "--before", BEFORE, "-c", str(config)],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("step", CRASH_STEPS)
def test_kill_9_at_each_step_then_rerun_loses_and_doubles_nothing(
    tmp_path: Path, step: str
) -> None:
    config, store, folder, _ = setup(tmp_path)
    total = fill(store, days=4, per_day=30)
    everything = ids(store, folder)[0]

    crashed = archive(config, step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    hot, cold = ids(store, folder)
    # The first day (90 events) is on disk; its hot rows are gone only once the drop committed.
    still_hot = total - 90 if step == "delete" else total
    assert (sum(hot.values()), sum(cold.values())) == (still_hot, 90)
    assert set(hot) | set(cold) == set(everything)

    code, stderr = rerun(config)
    assert code == 0, stderr
    hot, cold = ids(store, folder)
    assert set(hot) | set(cold) == set(everything)
    assert not set(hot) & set(cold), "an event is both hot and archived"
    assert max(cold.values()) == 1 and max(hot.values()) == 1
    assert sum(hot.values()) == 90 and sum(cold.values()) == total - 90
    assert not list(folder.rglob("*" + layout.TMP_SUFFIX))
    assert not list(folder.rglob("*.1.parquet")), "a day was written twice"
    assert len(list((folder / "digests").iterdir())) == 3, "a day was digested twice"
    done = verify(folder)
    assert not done.problems and done.rows == total - 90
    if step == "parquet":
        assert "left unlisted by an interrupted run" in stderr


def test_a_temporary_file_left_by_a_crash_is_removed(tmp_path: Path) -> None:
    config, store, folder, _ = setup(tmp_path)
    fill(store, days=1, per_day=5)
    stale = layout.event_file(folder, DAY0, "vault", 0)
    stale.parent.mkdir(parents=True)
    stale.with_name(stale.name + layout.TMP_SUFFIX).write_bytes(b"half a parquet")
    code, stderr = rerun(config)
    assert code == 0, stderr
    assert not list(folder.rglob("*" + layout.TMP_SUFFIX))
    assert not verify(folder).problems


def test_kill_9_after_the_first_digest_of_a_many_day_batch(tmp_path: Path) -> None:
    """One batch of three days: killed after the first digest is renamed into the chain,
    the other days' parts are published but unlisted and their digests still staged."""
    config, store, folder, _ = setup(tmp_path)
    total = fill(store, days=4, per_day=30)
    env = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, BATCH_ENV)}
    crashed = subprocess.run(  # noqa: S603 - our own console script
        [str(SCRIPT), "archive", "--before", BEFORE, "-c", str(config)],
        env={**env, CRASH_ENV: "digest"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(list((folder / "digests").glob("*.json"))) == 1
    assert len(list((folder / "digests").glob("*" + layout.TMP_SUFFIX))) == 2
    assert len(layout.event_files(folder, None, None)) == 9  # 6 of them in no digest yet
    code, stderr = rerun(config)
    assert code == 0, stderr
    hot, cold = ids(store, folder)
    assert sum(hot.values()) == 90 and sum(cold.values()) == total - 90
    assert max(cold.values()) == 1 and not set(hot) & set(cold)
    assert not list(folder.rglob("*" + layout.TMP_SUFFIX))
    assert not verify(folder).problems
