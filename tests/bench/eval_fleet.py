"""Evaluation on the fleet scenario: every attack class, benign changes, three backends.

    python tests/bench/eval_fleet.py [--scenario DIR] [--seed N] [--days N] [--scale F]
        [--config FILE] [--time-zone ZONE] [--alerts FILE] [--keep] [--check]

Generates the scenario (`fleet_gen.py`; reused when DIR already holds the same one), runs
`secretwatch replay` with one `--input` per backend (the Vault audit file, the CloudTrail
folder, the Kubernetes audit file) as a user would, and scores the alerts per attack kind.
Without `--config` the detectors run with `detectors.timezone` set to the Berlin team's
zone (`--time-zone UTC` to see the difference). `--alerts FILE` scores an existing alerts
file; `--check` exits 1 when a goal is missed. The figures are printed whether or not the
goals are met.

Definitions (all in event time; replay has no wall clock):
- an alert matches an attack when its evidence shares an event id with the attack's; the
  attack is caught when an alert matches it;
- an alert that matches no attack is on a benign change when its evidence shares an event
  id with the change's (fleet changes list the events they cause), or, for a change
  labelled without events (the core scenario's), when the alert's identity is the
  change's and it fired in the change's window; otherwise it is a false alert;
- false alerts per day: false alerts / days of the detection period;
- evidence precision of a matching alert: the share of its evidence ids that belong to the
  attacks it matches; per kind and overall, the mean over matching alerts;
- detection delay: from the attack's first event to the moment the alert could first be
  raised, the end of the window of its earliest finding (the alert's `window_end` if it
  lists no findings), never below zero; per attack, the smallest over its alerts.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_detectors import clip, detector_name, read_alerts  # noqa: E402
from fleet_gen import DEFAULT_DAYS, generate  # noqa: E402

MAX_ALERTS_PER_CAUGHT = 1.5
MAX_FALSE_PER_DAY = 0.1
MAX_ALERTS_PER_CHANGE = 1
MIN_PRECISION = 0.9


def _utc(text: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def alert_time(alert: dict) -> pd.Timestamp:
    """When replay could first have raised the alert: its earliest finding's window end."""
    ends = [f["window_end"] for f in alert.get("findings") or () if f.get("window_end")]
    return min(_utc(e) for e in ends) if ends else _utc(alert["window_end"])


@dataclass
class KindScore:
    attacks: int = 0
    caught: int = 0
    alerts: int = 0  # alerts matching an attack of this kind
    precision: list[float] = field(default_factory=list)  # one per matching alert
    delays: list[float] = field(default_factory=list)  # seconds, one per caught attack

    @property
    def alerts_per_caught(self) -> float:
        return self.alerts / self.caught if self.caught else 0.0


@dataclass
class FleetScore:
    """How one alert list fares against the fleet scenario's labels."""

    labels: dict
    alerts: int = 0
    kinds: dict[str, KindScore] = field(default_factory=dict)
    caught: dict[str, list[str]] = field(default_factory=dict)  # attack id -> alert ids
    matching: int = 0
    precision: list[float] = field(default_factory=list)
    on_change: dict[str, list[str]] = field(default_factory=dict)  # change id -> alert ids
    false_alerts: list[dict] = field(default_factory=list)

    @property
    def detect_days(self) -> int:
        return int(self.labels["detect_days"])

    @property
    def false_per_day(self) -> float:
        return len(self.false_alerts) / self.detect_days

    @property
    def alerts_per_caught(self) -> float:
        return self.matching / len(self.caught) if self.caught else 0.0

    @property
    def mean_precision(self) -> float:
        return statistics.fmean(self.precision) if self.precision else 0.0


def change_id(change: dict) -> str:
    return str(change.get("id") or f"{change['kind']}:{change['identity']}:{change['start']}")


def _alert_identities(alert: dict) -> set[str]:
    return {str(alert.get("identity")), *map(str, alert.get("identities") or ())}


def changes_touched(alert: dict, changes: list[dict]) -> list[str]:
    """Ids of the benign changes an alert (matching no attack) is about."""
    evidence = set(map(str, alert.get("evidence") or ()))
    when = _utc(alert["timestamp"])
    out = []
    for change in changes:
        if "event_ids" in change:
            if evidence & set(change["event_ids"]):
                out.append(change_id(change))
        elif (
            change["identity"] != "*"
            and change["identity"] in _alert_identities(alert)
            and _utc(change["start"]) <= when <= _utc(change["end"])
        ):
            out.append(change_id(change))
    return out


def on_call(alert: dict, labels: dict) -> bool:
    """Whether the alert's identity was on call when it fired (night pages are normal then;
    still a false alert, as in `eval_detectors`, but worth saying)."""
    when = _utc(alert["timestamp"])
    return any(
        w["identity"] in _alert_identities(alert) and _utc(w["start"]) <= when < _utc(w["end"])
        for w in labels.get("oncall", ())
    )


def score(alerts: list[dict], labels: dict) -> FleetScore:
    """Score alert dicts (`id`, `identity`, `timestamp`, `window_end`, `evidence`, and
    optionally `findings` and `identities`) against the labels; see the module docstring."""
    owner: dict[str, list[str]] = {}
    attacks = {a["id"]: a for a in labels["attacks"]}
    for attack in labels["attacks"]:
        for event_id in attack["event_ids"]:
            owner.setdefault(event_id, []).append(attack["id"])
    result = FleetScore(labels, alerts=len(alerts))
    for attack in labels["attacks"]:
        result.kinds.setdefault(attack["kind"], KindScore()).attacks += 1
    first_delay: dict[str, float] = {}
    for alert in alerts:
        evidence = [str(e) for e in alert.get("evidence") or ()]
        hit = sorted({a for e in evidence for a in owner.get(e, ())})
        if not hit:
            touched = changes_touched(alert, labels.get("changes", []))
            for cid in touched:
                result.on_change.setdefault(cid, []).append(str(alert.get("id")))
            if not touched:
                result.false_alerts.append(alert)
            continue
        result.matching += 1
        theirs = {e for a in hit for e in attacks[a]["event_ids"]}
        share = sum(e in theirs for e in evidence) / len(evidence)
        result.precision.append(share)
        raised = alert_time(alert)
        for kind in sorted({attacks[a]["kind"] for a in hit}):
            result.kinds[kind].alerts += 1
            result.kinds[kind].precision.append(share)
        for attack_id in hit:
            result.caught.setdefault(attack_id, []).append(str(alert.get("id")))
            delay = max(0.0, (raised - _utc(attacks[attack_id]["start"])).total_seconds())
            first_delay[attack_id] = min(delay, first_delay.get(attack_id, delay))
    for attack_id, delay in first_delay.items():
        kind = result.kinds[attacks[attack_id]["kind"]]
        kind.caught += 1
        kind.delays.append(delay)
    return result


@dataclass
class Goal:
    text: str
    met: bool
    detail: str


def goals(result: FleetScore) -> list[Goal]:
    """Issue 17's goals: coverage, concision, quiet, calm on benign changes, precise evidence."""
    covered = sum(1 for k in result.kinds.values() if k.caught)
    worst_change = max((len(v) for v in result.on_change.values()), default=0)
    return [
        Goal(
            "every attack kind caught",
            covered == len(result.kinds),
            f"{covered}/{len(result.kinds)} kinds, "
            f"{len(result.caught)}/{len(result.labels['attacks'])} attacks",
        ),
        Goal(
            f"<= {MAX_ALERTS_PER_CAUGHT:g} alerts per caught attack",
            bool(result.caught) and result.alerts_per_caught <= MAX_ALERTS_PER_CAUGHT,
            f"{result.alerts_per_caught:.2f}",
        ),
        Goal(
            f"<= {MAX_FALSE_PER_DAY:g} false alerts per day",
            result.false_per_day <= MAX_FALSE_PER_DAY,
            f"{result.false_per_day:.3f} ({len(result.false_alerts)} in {result.detect_days} days)",
        ),
        Goal(
            f"<= {MAX_ALERTS_PER_CHANGE} alert per benign change",
            worst_change <= MAX_ALERTS_PER_CHANGE,
            f"most on one change: {worst_change}, "
            f"{sum(map(len, result.on_change.values()))} in all",
        ),
        Goal(
            f"evidence precision >= {MIN_PRECISION:g}",
            bool(result.precision) and result.mean_precision >= MIN_PRECISION,
            f"{result.mean_precision:.2f} over {len(result.precision)} matching alerts",
        ),
    ]


# --------------------------------------------------------------------------- running


def prepare(folder: Path, seed: int, days: int, scale: float, out: Console) -> dict:
    """The labels of the scenario in `folder`, generating it unless the same one is there."""
    labels_path = folder / "labels.json"
    wanted = {"seed": seed, "days": days, "scale": scale}
    if labels_path.exists():
        labels = orjson.loads(labels_path.read_bytes())
        if {k: labels.get(k) for k in wanted} == wanted and "inputs" in labels:
            out.print(f"reusing the scenario in {folder} ({wanted})")
            return labels
        raise SystemExit(f"error: {folder} holds another scenario; pass another --scenario")
    began = time.perf_counter()
    labels = generate(folder, seed, days, scale)
    out.print(
        f"generated {sum(labels['counts'].values()):,} events, {len(labels['identities'])} "
        f"identities ({wanted}) in {time.perf_counter() - began:.1f} s into {folder}"
    )
    return labels


def run_replay(
    folder: Path, labels: dict, config: Path | None, zone: str, out: Console
) -> tuple[Path, float]:
    """`secretwatch replay`, one --input per backend; (alerts file, seconds)."""
    alerts = folder / "alerts.jsonl"
    alerts.unlink(missing_ok=True)
    if config is None:
        config = folder / "replay-config.yaml"
        config.write_text(f"detectors:\n  timezone: {zone}\n")
    command = [str(Path(sys.executable).parent / "secretwatch"), "replay"]
    for path in labels["inputs"]:
        command += ["--input", str(folder / path)]
    command += ["--train-until", labels["train_until"], "--alerts", str(alerts)]
    command += ["--config", str(config)]
    out.print("running: " + " ".join(command), markup=False, highlight=False)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"error: replay exited with {done.returncode}:\n{done.stderr[-4000:]}")
    if not alerts.exists():
        raise SystemExit(f"error: secretwatch replay wrote no {alerts}")
    for line in done.stdout.strip().splitlines()[:12]:
        out.print(f"  {line}", markup=False, highlight=False)
    return alerts, seconds


# --------------------------------------------------------------------------- report


def _duration(seconds: list[float]) -> str:
    if not seconds:
        return "-"
    value = statistics.median(seconds)
    if value < 3600:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def kind_table(result: FleetScore) -> Table:
    table = Table(
        title=f"Detection period: {result.detect_days} days, "
        f"{len(result.labels['attacks'])} labelled attacks, {result.alerts} alerts"
    )
    for name in ("kind", "caught", "alerts", "alerts/caught", "precision", "delay (median)"):
        table.add_column(name, justify="left" if name == "kind" else "right")
    for kind, k in sorted(result.kinds.items()):
        table.add_row(
            kind,
            f"{k.caught}/{k.attacks}",
            str(k.alerts),
            f"{k.alerts_per_caught:.2f}" if k.caught else "-",
            f"{statistics.fmean(k.precision):.2f}" if k.precision else "-",
            _duration(k.delays),
        )
    table.add_row(
        "all",
        f"{len(result.caught)}/{len(result.labels['attacks'])}",
        str(result.matching),
        f"{result.alerts_per_caught:.2f}",
        f"{result.mean_precision:.2f}" if result.precision else "-",
        _duration([d for k in result.kinds.values() for d in k.delays]),
    )
    return table


def change_table(result: FleetScore) -> Table:
    table = Table(title="Alerts on labelled benign changes")
    table.add_column("change")
    table.add_column("identity")
    table.add_column("alerts", justify="right")
    for change in result.labels.get("changes", []):
        if "event_ids" not in change and change["identity"] == "*":
            continue  # context (the holiday), matched by no alert
        table.add_row(
            f"{change_id(change)} {change['kind']}" if "id" in change else change["kind"],
            str(change["identity"]),
            str(len(result.on_change.get(change_id(change), []))),
        )
    return table


def report(result: FleetScore, out: Console) -> list[Goal]:
    out.print(kind_table(result))
    out.print(change_table(result))
    out.print(
        f"false alerts: {len(result.false_alerts)} ({result.false_per_day:.3f} per day)",
        highlight=False,
    )
    checks = goals(result)
    for goal in checks:
        mark = "[green]met[/green]   " if goal.met else "[red]MISSED[/red]"
        out.print(f"{mark} {goal.text}: {goal.detail}")
    missed = [a for a in result.labels["attacks"] if a["id"] not in result.caught]
    if missed:
        out.print("\n[bold]missed[/bold]")
        for a in missed:
            out.print(
                f"- {a['id']} {a['kind']} ({a['source']}) {a['start']}: {a['description']}",
                markup=False,
            )
    if result.false_alerts:
        out.print("\n[bold]false alerts[/bold]")
        for alert in result.false_alerts:
            out.print(
                f"- {alert.get('timestamp')} {detector_name(alert)} [{alert.get('severity')}] "
                f"{alert.get('identity')}"
                + (" (on call that week)" if on_call(alert, result.labels) else "")
                + f": {clip(str(alert.get('explanation')), 300)}",
                markup=False,
            )
    return checks


def main(argv: list[str] | None = None, out: Console | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, help="scenario folder (default: a temp one)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--config", type=Path, help="secretwatch config for replay")
    parser.add_argument("--time-zone", help="detectors.timezone (default: the scenario's)")
    parser.add_argument("--alerts", type=Path, help="score this alerts file; skip replay")
    parser.add_argument("--keep", action="store_true", help="keep a temp scenario folder")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    out = out or Console(width=None if sys.stdout.isatty() else 160, emoji=False)
    folder = args.scenario or Path(tempfile.mkdtemp(prefix="secretwatch-fleet-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        labels = prepare(folder, args.seed, args.days, args.scale, out)
        if args.alerts is not None:
            alerts_path = args.alerts
        else:
            zone = args.time_zone or labels["time_zone"]
            alerts_path, seconds = run_replay(folder, labels, args.config, zone, out)
            out.print(f"replay took {seconds:.1f} s")
        checks = report(score(read_alerts(alerts_path), labels), out)
    finally:
        if args.scenario is None:
            if args.keep:
                out.print(f"scenario kept in {folder}")
            else:
                shutil.rmtree(folder, ignore_errors=True)
    return 1 if args.check and not all(g.met for g in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
