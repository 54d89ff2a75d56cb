"""Peer groups: identities that belong together, so one's first read of a secret its peers
read all the time is much less surprising than one no peer reads, and a new member of a
group starts from what the group reads instead of from nothing.

Groups come from two places. Names: a Kubernetes service account's namespace, an AWS role
or user path (`role/service-role/...`), a Google Cloud service account's project, the team
part of a Vault role named `team/service`. Data: identities of the same kind (services with
services, people with people) whose home folder (the folder each reads most) is the same.
A peer reads a secret routinely when it read it and reads its folder at least
`routine_reads` times. Computed on demand, for the few identities a detector is about to
flag: a scan of the names and of one folder's readers, never of events. (The Vault policies
and inventory the access review reads are not used yet.)"""

from __future__ import annotations

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


def peers(base: Baselines, identity: str) -> Peers:
    """The identity's peers among the identities the baselines know."""
    why: dict[str, str] = {}
    group = group_of(identity)
    if group:
        for name in base.names:
            if name != identity and group_of(name) == group:
                why[name] = f"same {group}"
    home = base.home(identity)
    if home:
        kind = base.kind[base.index[identity]]
        for name in base.area_users.get(home, ()):
            if name == identity or name in why or base.kind[base.index[name]] != kind:
                continue
            if base.home(name) == home:
                why[name] = f"same home folder {home}"
    return Peers(why)


def group_secrets(base: Baselines, identity: str) -> set[str]:
    """What a new member's name group reads: where it starts from, having no history."""
    group = group_of(identity)
    if not group:
        return set()
    known: set[str] = set()
    for name in base.names:
        if name != identity and group_of(name) == group:
            known |= base.secrets[base.index[name]]
    return known
