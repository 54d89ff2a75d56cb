"""Which report section serves which control: the table auditors read first, so each
finding can be filed against the requirement it evidences."""

from __future__ import annotations

# section id (in the HTML), title, what it shows, SOC 2 (TSC 2017), ISO/IEC 27001:2022
# Annex A, PCI DSS v4.0, the files holding it.
CONTROLS: list[dict[str, str]] = [
    {
        "section": "secrets",
        "title": "Secrets and their accessors",
        "evidence": "who read each secret, how often, first and last read, denied attempts",
        "soc2": "CC6.1, CC6.3",
        "iso27001": "A.5.15, A.5.18",
        "pci_dss": "7.2.4",
        "files": "secrets, secret_accessors",
    },
    {
        "section": "identities",
        "title": "Identities",
        "evidence": "per identity: secrets read, volume, hours active, denials, alerts",
        "soc2": "CC6.2, CC6.3",
        "iso27001": "A.5.16, A.5.18, A.8.2",
        "pci_dss": "7.2.4, 7.2.5.1",
        "files": "identities",
    },
    {
        "section": "grants",
        "title": "Granted versus used access",
        "evidence": "identities whose grants far exceed their use; grants never used",
        "soc2": "CC6.1, CC6.3",
        "iso27001": "A.5.15, A.5.18, A.8.2",
        "pci_dss": "7.2.4, 7.2.5, 7.2.5.1",
        "files": "grants, grant_summary, overbroad_identities, unused_grants",
    },
    {
        "section": "unused",
        "title": "Unused secrets",
        "evidence": "secrets nobody read within the unused window: candidates for removal",
        "soc2": "CC6.2, CC6.3",
        "iso27001": "A.5.18",
        "pci_dss": "7.2.5.1, 8.6.3",
        "files": "unused_secrets",
    },
    {
        "section": "rotation",
        "title": "Rotation",
        "evidence": "secrets without a new value within the rotation window",
        "soc2": "CC6.1",
        "iso27001": "A.5.17",
        "pci_dss": "8.6.3",
        "files": "stale_rotations",
    },
    {
        "section": "ownership",
        "title": "Ownership",
        "evidence": "secrets without an accountable owner",
        "soc2": "CC6.1",
        "iso27001": "A.5.9, A.5.15",
        "pci_dss": "7.2.4, 12.5.1",
        "files": "ownership_gaps",
    },
    {
        "section": "alerts",
        "title": "Alerts and denied attempts",
        "evidence": "anomalous access raised in the period and how each was resolved",
        "soc2": "CC7.2, CC7.3",
        "iso27001": "A.8.16, A.5.25",
        "pci_dss": "10.4.1, 10.7.2",
        "files": "alerts, denied_attempts",
    },
    {
        "section": "coverage",
        "title": "Data sources and coverage",
        "evidence": "which logs the review rests on, first and last event, gaps over a day",
        "soc2": "CC7.2",
        "iso27001": "A.8.15",
        "pci_dss": "10.2.1, 10.7.2",
        "files": "coverage, coverage_gaps",
    },
]
