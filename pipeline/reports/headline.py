"""The report's headline numbers and the caveats shown next to its findings, both read off
the finished tables: apart from `access_review`, which computes those tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.reports.inventory import Evidence
from pipeline.reports.period import Period
from pipeline.reports.policies import Rule
from pipeline.reports.settings import ReportConfig

if TYPE_CHECKING:
    from pipeline.reports.access_review import StoreInputs


def headline(inputs: StoreInputs, t: dict[str, pd.DataFrame]) -> dict[str, object]:
    """The numbers on the summary page."""
    stale = t["stale_rotations"]
    resolution = t["alerts"]["resolution"].value_counts()
    return {
        "events_in_period": int(inputs.summary["events"].sum()),
        "events_in_store": inputs.events_total,
        "secrets_known": len(t["secrets"]),
        "secrets_read": int((t["secrets"]["reads"] > 0).sum()),
        "identities_active": len(t["identities"]),
        "reads": int(t["secrets"]["reads"].sum()),
        "denied": int(t["denied_attempts"]["denied"].sum()) if len(t["denied_attempts"]) else 0,
        "unused_secrets": len(t["unused_secrets"]),
        "rotation_overdue": int((stale["status"] == "overdue").sum()),
        "rotation_no_evidence": int((stale["status"] == "no evidence").sum()),
        "identities_with_grants": len(t["grant_summary"]),
        "overbroad_identities": len(t["overbroad_identities"]),
        "unused_grants": len(t["unused_grants"]),
        "ownership_gaps": len(t["ownership_gaps"]),
        "alerts": len(t["alerts"]),
        "alerts_open": int(resolution.get("open", 0)),
        "alerts_true_positive": int(resolution.get("true_positive", 0)),
        "alerts_false_positive": int(resolution.get("false_positive", 0)),
        "coverage_gaps": len(t["coverage_gaps"]),
        "sources_missing": int((t["coverage"]["status"] == "missing").sum()),
    }


def notes(
    history: pd.DataFrame,
    period: Period,
    cfg: ReportConfig,
    evidence: Evidence,
    policies: Mapping[str, list[Rule]],
    tables: dict[str, pd.DataFrame],
) -> list[str]:
    """Caveats a reviewer must see next to the findings."""
    notes = []
    if len(history):
        start = history["first_ts"].min()
        span = (pd.Timestamp(period.until) - start) / timedelta(days=1)
        for label, days in (("rotation", cfg.rotation_days), ("unused", cfg.unused_days)):
            if span < days:
                notes.append(
                    f"The stored history starts {start:%Y-%m-%d}, {span:.0f} days before the "
                    f"period ends: shorter than the {days}-day {label} window, so "
                    f"{label} findings rest on partial history."
                )
    missing = sorted(
        {p for names in evidence.vault_policies().values() for p in names}
        - set(policies)
        - {"root", "default"}
    )
    if missing:
        notes.append(
            "Policies named in the inventory but not found (ignored, as Vault ignores them): "
            + ", ".join(missing)
            + "."
        )
    if not evidence.vault_policies() and not evidence.inventory.grants:
        notes.append(
            "No grant evidence configured (Vault policies or inventory grants): the "
            "granted-versus-used section is empty."
        )
    if not evidence.rules and not any(s.owner for s in evidence.inventory.secrets):
        notes.append("No owners file or inventory owners: every secret is an ownership gap.")
    if (tables["coverage"]["status"] != "complete").any():
        notes.append(
            "Some sources have gaps or sent nothing: absence of access there is not evidence "
            "of no access (see Data sources)."
        )
    return notes
