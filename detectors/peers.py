"""Peer groups: identities that belong together, so one's first read of a secret its peers
read all the time is much less surprising than one no peer reads, and a new member of a
group starts from what the group reads instead of from nothing.

Groups come from three places. Names: a Kubernetes service account's namespace, an AWS role
or user path (`role/service-role/...`), a Google Cloud service account's project, the team
part of a Vault role named `team/service`. Grants: identities holding the same Vault
policies (`DetectorsConfig.policies`, from the access review's inventory). Data:
identities of the same kind (services with services, people with people) whose home
folder (the folder each reads most) is the same.
A peer reads a secret routinely when it read it and reads its folder at least
`routine_reads` times. Computed on demand, for the few identities a detector is about to
flag: a scan of the names and of one folder's readers, never of events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from detectors.baseline import Baselines
from detectors.events import area


@lru_cache(maxsize=65536)
def group_of(identity: str) -> str:
    """The group an identity's name puts it in, in words; '' when the name says nothing.

    >>> group_of("system:serviceaccount:payments:api")
    'namespace payments'
    >>> group_of("arn:aws:iam::111122223333:role/service-role/etl")
    'role path service-role/'
    >>> group_of("arn:aws:iam::111122223333:role/etl"), group_of("alice")
    ('', '')
    >>> group_of("orders/orders-api"), group_of("etl@analytics-prod.iam.gserviceaccount.com")
    ('team orders', 'project analytics-prod')
    """
    if identity.startswith("system:serviceaccount:"):
        parts = identity.split(":")
        return f"namespace {parts[2]}" if len(parts) == 4 and parts[2] else ""
    if identity.startswith("arn:"):
        resource = identity.split(":", 5)[-1]  # role/path/name, user/path/name
        kind, _, rest = resource.partition("/")
        path, _, _ = rest.rpartition("/")
        return f"{kind} path {path}/" if kind in ("role", "user") and path else ""
    if identity.endswith(".iam.gserviceaccount.com"):  # Google Cloud service accounts
        project = identity.partition("@")[2].split(".", 1)[0]
        return f"project {project}" if project else ""
    team, sep, name = identity.partition("/")
    return f"team {team}" if sep and team and name and "/" not in name else ""


@dataclass(frozen=True)
class Peers:
    """An identity's peers, each with why it is one."""

    why: dict[str, str]

    def readers(self, base: Baselines, secret: str, routine_reads: int) -> list[str]:
        """The peers that read `secret` routinely."""
        folder = area(secret)
        out = []
        for name in sorted(self.why):
            r = base.index.get(name)
            if r is not None and secret in base.secrets[r]:
                if base.areas[r].get(folder, 0) >= routine_reads:
                    out.append(name)
        return out

    def reasons(self, names: list[str]) -> str:
        """`same namespace payments` for the given peers, each reason once."""
        return ", ".join(sorted({self.why[n] for n in names}))


Policies = Mapping[str, Sequence[str]]  # identity -> its Vault policies


def policy_group(identity: str, policies: Policies) -> str:
    """The Vault policies an identity holds besides `default` (every token's), in words;
    '' when none are known.

    >>> policy_group("orders/api", {"orders/api": ["default", "orders-read", "kv-base"]})
    'Vault policies kv-base, orders-read'
    >>> policy_group("alice", {"orders/api": ["orders-read"]})
    ''
    """
    held = sorted(set(policies.get(identity, ())) - {"default"})
    return f"Vault policies {', '.join(held)}" if held else ""


def _members(base: Baselines, identity: str, policies: Policies) -> dict[str, str]:
    """The identities known to the baselines that share a name group or the Vault
    policies of `identity`, each with the group in words."""
    why: dict[str, str] = {}
    group = group_of(identity)
    if group:
        for name in base.names:
            if name != identity and group_of(name) == group:
                why[name] = f"same {group}"
    held = policy_group(identity, policies)
    if held:
        for name in policies:
            if name != identity and name not in why and name in base.index:
                if policy_group(name, policies) == held:
                    why[name] = f"same {held}"
    return why


def peers(base: Baselines, identity: str, policies: Policies | None = None) -> Peers:
    """The identity's peers among the identities the baselines know."""
    why = _members(base, identity, policies or {})
    home = base.home(identity)
    if home:
        kind = base.kind[base.index[identity]]
        for name in base.area_users.get(home, ()):
            if name == identity or name in why or base.kind[base.index[name]] != kind:
                continue
            if base.home(name) == home:
                why[name] = f"same home folder {home}"
    return Peers(why)


def group_secrets(base: Baselines, identity: str, policies: Policies | None = None) -> set[str]:
    """What a new member's group (by name or by Vault policies) reads: where it starts
    from, having no history."""
    known: set[str] = set()
    for name in _members(base, identity, policies or {}):
        known |= base.secrets[base.index[name]]
    return known
