"""Root-token use: Vault's root token bypasses every policy and should be revoked once a
cluster is set up, so any use at all is worth a person's attention. No baseline needed."""

from __future__ import annotations

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural, sample
from detectors.finding import finding, hour_window
from detectors.settings import RootToken


def detect(base: Baselines, batch: Batch, cfg: RootToken) -> list[Finding]:
    ev = batch.ev
    findings = []
    for identity, hour, pos in batch.groups(ev.identity_kind == "root", "uhour"):
        secrets = {s for s in ev.secret[pos] if s}
        ips = {ip for ip in ev.source_ip[pos] if ip}
        at = batch.first_us(pos)
        findings.append(
            finding(
                "root_token",
                cfg,
                batch,
                identity=identity,
                span=hour_window(int(hour)),
                evidence=pos,
                score=1.0,
                explanation=(
                    f"the root token made {plural(len(pos), 'request')} at {batch.when(at)}"
                    f" ({sample(secrets) if secrets else 'no secret paths'}) from "
                    f"{sample(ips) if ips else 'an unknown address'}; root bypasses every "
                    "policy and should not be in use after setup."
                ),
            )
        )
    return findings
