"""Evaluation harness: secretwatch's detectors against labelled attacks, next to ElastAlert.

    python tests/bench/eval_detectors.py [--scenario DIR] [--seed N] [--days N] [--scale F]
        [--config FILE] [--alerts FILE] [--keep] [--check]

Generates the scenario (`scenario_gen.py`; reused when DIR already holds the same one), runs
`secretwatch replay` over it as a user would, runs the ElastAlert-style rules
(`elastalert_rules.py`) over the same parsed events, scores both against the labels and
prints the comparison, the goals, every false alert with its explanation and every missed
attack, so a developer can see what to tune. `--alerts FILE` scores an existing alerts file
instead of running replay; `--check` exits 1 when a goal is missed.

Scoring (the same for both): an alert matches an attack when its evidence shares an event id
with the attack's; an attack is caught when at least one alert matches it; an alert that
matches no attack is false, whenever it was raised.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elastalert_rules import PAIR_RULES, RULES, run_rules  # noqa: E402
from scenario_gen import generate  # noqa: E402

from pipeline.detection.replay import load_events  # noqa: E402

BASELINE, PAIR_BASELINE = "ElastAlert-style", "ElastAlert pair-term"
MAX_ALERTS_PER_CAUGHT = 2.0
MAX_FALSE_PER_DAY = 0.1
EXPLANATION_CHARS = 600  # a grouped alert's explanation can run to pages


@dataclass
class Score:
    """How one alert list fares against a scenario's labels."""

    name: str
    attacks: list[dict]
    detect_days: int
    alerts: int = 0
    matching: int = 0  # alerts matching at least one attack
    caught: dict[str, list[str]] = field(default_factory=dict)  # attack id -> alert ids
    false_alerts: list[dict] = field(default_factory=list)  # each with "touches": [change]
    seconds: float | None = None

    @property
    def caught_count(self) -> int:
        return len(self.caught)

    @property
    def alerts_per_caught(self) -> float:
        return self.matching / self.caught_count if self.caught else 0.0

    @property
    def false_per_day(self) -> float:
        return len(self.false_alerts) / self.detect_days

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """kind -> (caught, labelled)."""
        out: dict[str, tuple[int, int]] = {}
        for attack in self.attacks:
            got, total = out.get(attack["kind"], (0, 0))
            out[attack["kind"]] = (got + (attack["id"] in self.caught), total + 1)
        return out

    def missed(self) -> list[dict]:
        return [a for a in self.attacks if a["id"] not in self.caught]

    def false_by(self, key: str) -> Counter[str]:
        """False alerts counted by `detector` or `identity`."""
        return Counter(
            detector_name(a) if key == "detector" else str(a.get(key)) for a in self.false_alerts
        )


def detector_name(alert: dict) -> str:
    """A grouped alert names several detectors.

    >>> detector_name({"detector": ["rate_spike", "enumeration"]})
    'rate_spike+enumeration'
    """
    value = alert.get("detector")
    return "+".join(value) if isinstance(value, list) else str(value)


def _utc(text: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def touched_changes(alert: dict, labels: dict) -> list[dict]:
    """Legitimate changes on the alert's identity (or on everyone) in force when it fired,
    and the on-call week if its identity was on call (night pages are normal then)."""
    when = _utc(alert["timestamp"])
    weeks = [{**w, "kind": "on_call_week"} for w in labels.get("oncall", [])]
    return [
        c
        for c in [*labels.get("changes", []), *weeks]
        if c["identity"] in ("*", alert.get("identity"))
        and _utc(c["start"]) <= when <= _utc(c["end"])
    ]


def score(alerts: list[dict], labels: dict, name: str = "") -> Score:
    """Score `alerts` (dicts with at least `id`, `identity`, `timestamp`, `evidence`)."""
    owner: dict[str, list[str]] = {}
    for attack in labels["attacks"]:
        for event_id in attack["event_ids"]:
            owner.setdefault(event_id, []).append(attack["id"])
    result = Score(name, labels["attacks"], labels["detect_days"], alerts=len(alerts))
    for alert in alerts:
        hit = {a for e in alert.get("evidence") or () for a in owner.get(str(e), ())}
        if hit:
            result.matching += 1
            for attack_id in sorted(hit):
                result.caught.setdefault(attack_id, []).append(str(alert.get("id")))
        else:
            touches = touched_changes(alert, labels)
            result.false_alerts.append({**alert, "touches": touches})
    return result


@dataclass
class Goal:
    text: str
    met: bool
    detail: str


def goals(ours: Score, baseline: Score) -> list[Goal]:
    """The four goals of issue 3: coverage, concision, quiet, and beating the baseline."""
    kinds = ours.by_kind()
    covered = sum(1 for got, _ in kinds.values() if got)
    return [
        Goal(
            "every attack kind caught",
            covered == len(kinds),
            f"{covered}/{len(kinds)} kinds, {ours.caught_count}/{len(ours.attacks)} attacks",
        ),
        Goal(
            f"<= {MAX_ALERTS_PER_CAUGHT:g} alerts per caught attack",
            bool(ours.caught) and ours.alerts_per_caught <= MAX_ALERTS_PER_CAUGHT,
            f"{ours.alerts_per_caught:.2f}",
        ),
        Goal(
            f"<= {MAX_FALSE_PER_DAY:g} false alerts per day",
            ours.false_per_day <= MAX_FALSE_PER_DAY,
            f"{ours.false_per_day:.3f} ({len(ours.false_alerts)} in {ours.detect_days} days)",
        ),
        Goal(
            f"more attacks caught than {baseline.name} at no more false alerts per day",
            ours.caught_count > baseline.caught_count
            and ours.false_per_day <= baseline.false_per_day,
            f"{ours.caught_count} vs {baseline.caught_count} caught, "
            f"{ours.false_per_day:.3f} vs {baseline.false_per_day:.3f} false/day",
        ),
    ]


# --------------------------------------------------------------------------- running


def read_alerts(path: Path) -> list[dict]:
    """Alerts from a JSON-lines file (blank lines ignored)."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def prepare_scenario(folder: Path, seed: int, days: int, scale: float, out: Console) -> dict:
    """The labels of the scenario in `folder`, generating it unless the same one is there."""
    labels_path = folder / "labels.json"
    wanted = {"seed": seed, "days": days, "scale": scale}
    if labels_path.exists():
        labels = orjson.loads(labels_path.read_bytes())
        if {k: labels.get(k) for k in wanted} == wanted:
            out.print(f"reusing the scenario in {folder} ({wanted})")
            return labels
        raise SystemExit(
            f"error: {folder} holds another scenario "
            f"({ {k: labels.get(k) for k in wanted} }); pass another --scenario "
            "or delete it"
        )
    began = time.perf_counter()
    labels = generate(folder, seed, days, scale)
    counts = labels["counts"]
    out.print(
        f"generated {counts['vault_calls'] + counts['aws_records']:,} events "
        f"({wanted}) in {time.perf_counter() - began:.1f} s into {folder}"
    )
    return labels


def run_replay(folder: Path, labels: dict, config: Path | None, out: Console) -> tuple[Path, float]:
    """`secretwatch replay` over the scenario, as a user runs it; (alerts file, seconds)."""
    alerts = folder / "alerts.jsonl"
    alerts.unlink(missing_ok=True)  # never score a previous run's alerts
    command = [
        str(Path(sys.executable).parent / "secretwatch"),
        "replay",
        "--input",
        str(folder / "vault"),
        "--input",
        str(folder / "aws"),
        "--train-until",
        labels["train_until"],
        "--alerts",
        str(alerts),
    ]
    if config is not None:
        command += ["--config", str(config)]
    out.print("running: " + " ".join(command))
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(
            f"error: secretwatch replay exited with {done.returncode}:\n{done.stderr[-4000:]}"
        )
    if not alerts.exists():
        raise SystemExit(f"error: secretwatch replay wrote no {alerts}")
    for line in done.stdout.strip().splitlines()[-10:]:
        out.print(f"  {line}", markup=False, highlight=False)
    return alerts, seconds


def run_baselines(folder: Path, labels: dict) -> list[Score]:
    """The ElastAlert rules (and their pair-term variant) over the parsed scenario, scored;
    run time includes parsing."""
    began = time.perf_counter()
    frame, _, dead = load_events([str(folder / "vault"), str(folder / "aws")])
    if dead:
        raise SystemExit(
            f"error: the scenario has {len(dead)} dead letters, e.g. "
            f"{dead[0].reason}; the generator or a parser is wrong"
        )
    parsed = time.perf_counter() - began
    scores = []
    for name, rules in ((BASELINE, RULES), (PAIR_BASELINE, PAIR_RULES)):
        began = time.perf_counter()
        result = score(run_rules(frame, labels["train_until"], rules), labels, name)
        result.seconds = parsed + time.perf_counter() - began
        scores.append(result)
    return scores


# --------------------------------------------------------------------------- report


def clip(text: str, limit: int = EXPLANATION_CHARS) -> str:
    """The start of a long text, saying how much was left out.

    >>> clip("x" * 10, 4)
    'xxxx... (6 more characters)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _pct(got: int, total: int) -> str:
    return f"{got}/{total}"


def comparison(results: list[Score]) -> Table:
    """One column per alert source, one row per measure."""
    first = results[0]
    table = Table(
        title=f"Detection period: {first.detect_days} days, {len(first.attacks)} labelled attacks"
    )
    table.add_column("")
    for result in results:
        table.add_column(result.name, justify="right")
    table.add_row("attacks caught", *(_pct(r.caught_count, len(r.attacks)) for r in results))
    kinds = [r.by_kind() for r in results]
    for kind in sorted(kinds[0]):
        table.add_row(f"  {kind}", *(_pct(*k[kind]) for k in kinds))
    table.add_row("alerts", *(str(r.alerts) for r in results))
    table.add_row("alerts per caught attack", *(f"{r.alerts_per_caught:.2f}" for r in results))
    table.add_row("false alerts", *(str(len(r.false_alerts)) for r in results))
    table.add_row("false alerts per day", *(f"{r.false_per_day:.3f}" for r in results))
    table.add_row(
        "run time", *(f"{r.seconds:.1f} s" if r.seconds is not None else "-" for r in results)
    )
    return table


def breakdown(result: Score) -> Table:
    """Where the false alerts come from: detector, identity, the change they touch."""
    table = Table(title=f"{result.name}: false alerts by detector and identity")
    table.add_column("detector")
    table.add_column("identity")
    table.add_column("touches change")
    table.add_column("count", justify="right")
    rows = Counter(
        (
            detector_name(a),
            str(a.get("identity")),
            ", ".join(c["kind"] for c in a["touches"]) or "-",
        )
        for a in result.false_alerts
    )
    for (detector, identity, touches), n in sorted(rows.items(), key=lambda r: (-r[1], r[0])):
        table.add_row(detector, identity, touches, str(n))
    return table


def report(ours: Score, baselines: list[Score], out: Console) -> list[Goal]:
    """Print the comparison, the goals (against the first baseline) and what went wrong."""
    baseline = baselines[0]
    out.print(comparison([ours, *baselines]))
    out.print(
        f"({PAIR_BASELINE}: the same rules with one composite new_term on identity + "
        "secret; context only, the goals compare against the first baseline)"
    )
    for result in (ours, baseline):
        if result.false_alerts:
            out.print(breakdown(result))
    checks = goals(ours, baseline)
    for goal in checks:
        mark = "[green]met[/green]   " if goal.met else "[red]MISSED[/red]"
        out.print(f"{mark} {goal.text}: {goal.detail}")
    if ours.false_alerts:
        out.print(f"\n[bold]{ours.name} false alerts[/bold]")
        for alert in ours.false_alerts:
            touches = ", ".join(c["kind"] for c in alert["touches"])
            out.print(
                f"- {alert.get('timestamp')} {detector_name(alert)} "
                f"[{alert.get('severity')}] {alert.get('identity')}"
                + (f" (touches change: {touches})" if touches else "")
            )
            out.print(f"  {clip(str(alert.get('explanation')))}", markup=False)
    for result in (ours, baseline):
        if result.missed():
            out.print(f"\n[bold]{result.name} missed[/bold]")
            for attack in result.missed():
                out.print(
                    f"- {attack['id']} {attack['kind']} on {attack['identity']} "
                    f"({attack['source']}), {attack['start']} .. {attack['end']}, "
                    f"{len(attack['event_ids'])} events: {attack['description']}",
                    markup=False,
                )
    return checks


def main(argv: list[str] | None = None, out: Console | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, help="scenario folder (default: a temp one)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--config", type=Path, help="secretwatch config for replay")
    parser.add_argument("--alerts", type=Path, help="score this alerts file; skip replay")
    parser.add_argument("--keep", action="store_true", help="keep a temp scenario folder")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    out = out or Console(width=None if sys.stdout.isatty() else 160)
    folder = args.scenario or Path(tempfile.mkdtemp(prefix="secretwatch-scenario-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        labels = prepare_scenario(folder, args.seed, args.days, args.scale, out)
        if args.alerts is not None:
            alerts_path, seconds = args.alerts, None
        else:
            alerts_path, seconds = run_replay(folder, labels, args.config, out)
        ours = score(read_alerts(alerts_path), labels, "secretwatch")
        ours.seconds = seconds
        checks = report(ours, run_baselines(folder, labels), out)
    finally:
        if args.scenario is None:
            if args.keep:
                out.print(f"scenario kept in {folder}")
            else:
                shutil.rmtree(folder, ignore_errors=True)
    return 1 if args.check and not all(g.met for g in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
