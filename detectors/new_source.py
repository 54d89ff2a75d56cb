"""New source: an identity connects from a network, or with client software, it never used.

A stolen credential is replayed from somewhere else and usually with other tools: a token
of a service that always came from its pod subnet via vault-agent shows up from an outside
address with curl. An outside address that no identity uses is the strongest network
signal, a new pod subnet that other services use the weakest; a client no identity uses is
stronger than one others use (aws-cli of the engineers). Identities that often pick up new
networks or clients (people on the move, Lambdas on changing AWS addresses) are discounted
by how often they did so in their history. Both signals together add up."""

from __future__ import annotations

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural, sample
from detectors.events import is_private
from detectors.finding import finding, hour_window
from detectors.settings import NewSource


def network_novelty(net: str, identity: str, base: Baselines) -> float:
    """How surprising a network this identity never used is, 0-1, before its churn."""
    others = base.net_users.get(net, set()) - {identity}
    if not is_private(net):
        return 0.8 if others else 1.0
    return 0.2 if others else 0.5


def client_novelty(client: str, identity: str, base: Baselines) -> float:
    """How surprising a client this identity never used is, 0-1, before its churn."""
    others = base.client_users.get(client, set()) - {identity}
    return 0.7 if others else 0.9


def _churn(new_days: int, active_days: int) -> float:
    return min(1.0, 2 * new_days / max(active_days, 1))


def detect(base: Baselines, batch: Batch, cfg: NewSource) -> list[Finding]:
    ev = batch.ev
    findings = []
    for identity, hour, pos in batch.groups(batch.warm, "uhour"):
        r = int(batch.rows[pos[0]])
        active = int(base.active_days[r])
        net_keep = 1 - _churn(int(base.net_new_days[r]), active)
        client_keep = 1 - _churn(int(base.client_new_days[r]), active)
        scores: dict[tuple[str, str], float] = {}
        for net, client in set(zip(ev.net[pos], ev.client[pos], strict=True)):
            n = network_novelty(net, identity, base) * net_keep
            c = client_novelty(client, identity, base) * client_keep
            n = n if net and net not in base.nets[r] else 0.0
            c = c if client and client not in base.clients[r] else 0.0
            if n or c:
                scores[(net, client)] = 1 - (1 - n) * (1 - c)
        if not scores:
            continue
        (net, client), score = max(scores.items(), key=lambda kv: (kv[1], kv[0]))
        if score < cfg.threshold:
            continue
        hits = pos[(ev.net[pos] == net) & (ev.client[pos] == client)]
        at = batch.first_us(hits)
        what = []
        if net not in base.nets[r]:
            users = base.net_users.get(net, set()) - {identity}
            outside = "an outside" if not is_private(net) else "an internal"
            shared = f"also used by {sample(users, 2)}" if users else "used by no other identity"
            what.append(
                f"from {sample(set(ev.source_ip[hits]))} ({outside} network, {net}, {shared};"
                f" it had used {plural(len(base.nets[r]), 'network')}: {sample(base.nets[r], 2)})"
            )
        if client and client not in base.clients[r]:
            users = base.client_users.get(client, set()) - {identity}
            what.append(
                f"with {client} (a client it never used; it uses "
                f"{sample(base.clients[r], 2) or 'none'}"
                f"{'' if not users else ', and ' + sample(users, 2) + ' do use it'})"
            )
        findings.append(
            finding(
                "new_source",
                cfg,
                batch,
                identity=identity,
                span=hour_window(int(hour)),
                evidence=hits,
                score=float(score),
                explanation=(
                    f"{identity} made {plural(len(hits), 'request')} at {batch.when(at)} "
                    + " and ".join(what)
                    + f", in {plural(active, 'active day')} of history."
                ),
            )
        )
    return findings
