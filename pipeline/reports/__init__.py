"""Quarterly access review: the evidence auditors ask for, computed from store aggregates.

`settings` (config), `period` (review periods), `inventory` (owners, known secrets,
grants), `policies` (Vault ACLs), `rotation` (what counts as a new value), `grants` and
`coverage` (two of the analyses), `access_review` (all tables), `controls` (the control
mapping), `charts` and `render` (HTML), `export` (CSV, JSON), `manifest` (hashes), `run`
(wiring). Imports stay light here: the CLI loads the heavy parts only for `report`.
"""
