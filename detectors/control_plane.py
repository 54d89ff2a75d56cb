"""Control-plane changes: who can read secrets, or whether anyone can see it, changed.

Parsers mark these events (`pipeline.sources.control_plane`): an ACL policy written, an auth
method enabled, a role bound, a secret's resource policy replaced, a KMS key scheduled for
deletion, a secret deleted. Each identity is judged against its own history of such
changes: one that has written policies every week writing another is routine; one that
never made this kind of change (or has no history at all) making it is a finding, `high`
for grants that can reach secrets (policies, RBAC, resource or IAM policies, root or orphan
tokens, raw storage, root generation) and `medium` otherwise.

Tampering with audit itself (a Vault audit device disabled or added, a Vault mount tuned
to log values unhashed, a trail stopped or deleted, diagnostic settings removed, audit
config changed) is critical on its own,
whatever the history and whether or not the call succeeded: an attempt is the signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch
from detectors.events import CONTROL_NOTE, TAMPER_NOTE
from detectors.finding import finding, hour_window
from detectors.settings import ControlPlane

# Changes that can grant reading secrets, by operation (prefixes end in ":" or "-").
GRANTS = frozenset(
    {
        "policy-write",
        "token-create-root",
        "token-create-orphan",
        "rbac-grant-secrets",
        "rbac-bind",
        "rbac-role-write",
        "PutResourcePolicy",
        "SetIamPolicy",
        "PutKeyPolicy",
    }
)
_GRANT_PREFIXES = ("raw-", "generate-root-", "VaultPut:", "VaultPatch:")


def is_grant(operation: str) -> bool:
    """Whether a control-plane operation can grant reading secrets.

    >>> is_grant("policy-write"), is_grant("VaultPatch:accessPolicies"), is_grant("auth-tune")
    (True, True, False)
    """
    return operation in GRANTS or operation.startswith(_GRANT_PREFIXES)


@dataclass(frozen=True)
class _Judged:
    """The settings a finding carries, with the severity this one earned."""

    threshold: float
    severity: str


def detect(base: Baselines, batch: Batch, cfg: ControlPlane) -> list[Finding]:
    ev = batch.ev
    findings = []
    for identity, hour, pos in batch.groups(ev.control > 0, "uhour"):
        r = int(batch.rows[pos[0]])
        known = base.controls[r] if r >= 0 else set()
        tamper = pos[ev.control[pos] == 2]
        new = pos[(ev.control[pos] == 1) & ~np.isin(ev.operation[pos], list(known))]
        if not len(tamper) and not len(new):
            continue
        evidence = np.sort(np.concatenate([tamper, new]))
        if len(tamper):
            severity = cfg.tamper_severity
        elif any(is_grant(op) for op in ev.operation[new]):
            severity = cfg.grant_severity
        else:
            severity = cfg.severity
        findings.append(
            finding(
                "control_plane",
                _Judged(cfg.threshold, severity),
                batch,
                identity=identity,
                span=hour_window(int(hour)),
                evidence=evidence,
                score=1.0,
                explanation=_explain(batch, tamper, new, known, r >= 0),
            )
        )
    return findings


def _explain(batch: Batch, tamper: np.ndarray, new: np.ndarray, known: set[str], seen: bool) -> str:
    """What changed, in the parsers' words, when, and why it stands out."""
    ev = batch.ev
    parts = []
    if len(tamper):
        changes = _changes(batch, tamper)
        parts.append(f"{changes}: tampering with audit itself is critical whatever the history")
    if len(new):
        changes = _changes(batch, new)
        kinds = sorted(set(ev.operation[new]))
        if not seen:
            why = "an identity with no history here"
        elif not known:
            why = "it had made no control-plane change before"
        else:
            why = f"no {', '.join(kinds)} before; its changes so far: {_few(known)}"
        parts.append(f"{changes}, which it had never done ({why})")
    return "; ".join(parts) + "."


def _changes(batch: Batch, pos: np.ndarray, limit: int = 3) -> str:
    """`disabled the Vault audit device file/ at 03:10 on Sunday 2026-05-03 (denied)`, then
    the other distinct changes, a few by name."""
    ev = batch.ev
    pos = pos[np.argsort(ev.ts_us[pos], kind="stable")]
    whats = list(
        dict.fromkeys(_what(str(ev.note[i]), str(ev.operation[i]), str(ev.secret[i])) for i in pos)
    )
    first = pos[0]
    said = f"{whats[0]} at {batch.when(int(ev.ts_us[first]))}"
    if ev.outcome[first] != "success":
        said += f" ({ev.outcome[first]})"
    if len(whats) > 1:
        more = f" and {len(whats) - 1 - limit} more" if len(whats) - 1 > limit else ""
        said += ", then " + ", ".join(whats[1 : 1 + limit]) + more
    return said


def _what(note: str, operation: str, secret: str) -> str:
    """The parser's words for the change, with what it changed where they do not name it
    (`deleted the secret without recovery (arn:...:secret:db)`)."""
    for mark in (TAMPER_NOTE, CONTROL_NOTE):
        at = note.find(mark)
        if at >= 0:
            said = note[at + len(mark) :].split("; ", 1)[0]
            name = secret.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            return said if not secret or name in said else f"{said} ({secret})"
    return f"{operation} on {secret or 'the control plane'}"


def _few(values: set[str], limit: int = 3) -> str:
    ordered = sorted(values)
    more = f" and {len(ordered) - limit} more" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more
