"""Evidence that logs cannot give: who owns a secret, which secrets exist although nobody
touched them, and who may read what outside Vault (whose policies `policies` reads).

Two YAML files, both optional:

- owners (`config/owners.yaml`): rules `{match, owner, source?, contact?}`, first match wins;
- inventory: `secrets` (known secrets, their owner and whether rotation applies),
  `identities` (the Vault policies each identity's tokens carry) and `grants` (secret
  patterns an identity may read on other backends: AWS, GCP, Azure, Kubernetes).

Patterns are canonical secret paths as secretwatch stores them, with `*` matching any
characters (slashes included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError

Source = Literal["vault", "aws", "gcp", "azure", "k8s"]
_M = TypeVar("_M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OwnerRule(_Model):
    match: str
    owner: str
    source: Source | None = None
    contact: str | None = None


class OwnersFile(_Model):
    owners: list[OwnerRule] = Field(default_factory=list)


class InventorySecret(_Model):
    secret: str
    source: Source
    backend: str | None = None  # any backend of the source when left out
    owner: str | None = None
    rotation: Literal["required", "exempt"] = "required"


class VaultIdentity(_Model):
    identity: str
    policies: list[str]


class Grant(_Model):
    identity: str
    source: Source
    secrets: list[str]
    note: str | None = None


class InventoryFile(_Model):
    secrets: list[InventorySecret] = Field(default_factory=list)
    identities: list[VaultIdentity] = Field(default_factory=list)
    grants: list[Grant] = Field(default_factory=list)


def pattern(glob: str) -> re.Pattern[str]:
    """A secret pattern as a regex: `*` is any run of characters, the rest is literal.

    >>> bool(pattern("secret/payments/*").fullmatch("secret/payments/api/db"))
    True
    >>> bool(pattern("secret/payments/*").fullmatch("secret/payments"))
    False
    """
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")))


@dataclass(frozen=True)
class Evidence:
    """Owners and inventory together, as the report asks for them."""

    rules: tuple[OwnerRule, ...] = ()
    inventory: InventoryFile = InventoryFile()

    @cached_property
    def _rules(self) -> list[tuple[re.Pattern[str], OwnerRule]]:
        return [(pattern(r.match), r) for r in self.rules]

    @cached_property
    def _listed(self) -> dict[tuple[str, str], InventorySecret]:
        return {(s.source, s.secret): s for s in self.inventory.secrets}

    def owner(self, source: str, secret: str) -> tuple[str | None, str]:
        """(owner, where it was found): the inventory entry first, then the first
        matching owners rule; (None, "") is an ownership gap."""
        listed = self._listed.get((source, secret))
        if listed is not None and listed.owner:
            return listed.owner, "inventory"
        for regex, rule in self._rules:
            if (rule.source is None or rule.source == source) and regex.fullmatch(secret):
                return rule.owner, "owners"
        return None, ""

    def rotation_exempt(self, source: str, secret: str) -> bool:
        listed = self._listed.get((source, secret))
        return listed is not None and listed.rotation == "exempt"

    def vault_policies(self) -> dict[str, list[str]]:
        return {i.identity: list(i.policies) for i in self.inventory.identities}

    def grants(self, source: str) -> Iterable[tuple[str, str, re.Pattern[str]]]:
        """(identity, pattern text, regex) for every inventory grant on `source`."""
        for grant in self.inventory.grants:
            if grant.source == source:
                for glob in grant.secrets:
                    yield grant.identity, glob, pattern(glob)


def load(owners: Path | None, inventory: Path | None, owners_default: bool = False) -> Evidence:
    """Read both files; `owners_default` lets the default owners file be absent."""
    rules: tuple[OwnerRule, ...] = ()
    if owners is not None and (owners.exists() or not owners_default):
        rules = tuple(_read(owners, OwnersFile).owners)
    listed = _read(inventory, InventoryFile) if inventory is not None else InventoryFile()
    return Evidence(rules, listed)


def _read(path: Path, model: type[_M]) -> _M:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; fix the path in the `report:` config") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} cannot be read as YAML: {exc}") from None
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid {path}: {problems}") from None
