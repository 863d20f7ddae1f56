"""NetworkPolicy semantics, for scripts/check_deploy.py: which connections a set
of NetworkPolicy objects allows, and the connections the gateway's deployments
must allow and refuse.

A connection from a pod to a pod (or an address outside the cluster) is allowed
when the source's egress allows it (no Egress policy selects the source, or a
rule of one does) and the destination's ingress allows it (likewise); a rule
matches when one of its peers matches (none given: every peer) and one of its
ports matches (none given: every port). Peers: podSelector (in the policy's
namespace unless a namespaceSelector is given), namespaceSelector, ipBlock
(cidr minus except). In-cluster pods get addresses in 10.42.0.0/16 and are
matched by ipBlocks too, as several CNIs do: a rule meant for "outside the
cluster" must exclude them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field


class NetFail(Exception):
    pass


@dataclass
class Endpoint:
    """A pod (ns set) or an address outside the cluster (ns None)."""

    name: str
    ip: str
    ns: str | None = None
    labels: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)  # named container ports

    def ns_labels(self) -> dict:
        return {"kubernetes.io/metadata.name": self.ns} if self.ns else {}


def selects(sel: dict | None, labels: dict) -> bool:
    """A label selector: {} matches everything."""
    if sel is None:
        return False
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        ok = {
            "In": k in labels and labels[k] in vals,
            "NotIn": k not in labels or labels[k] not in vals,
            "Exists": k in labels,
            "DoesNotExist": k not in labels,
        }[op]
        if not ok:
            return False
    return True


def peer_matches(peer: dict, policy_ns: str, ep: Endpoint) -> bool:
    if "ipBlock" in peer:
        ip = ipaddress.ip_address(ep.ip)
        block = peer["ipBlock"]
        net = ipaddress.ip_network(block["cidr"])
        if ip.version != net.version or ip not in net:
            return False
        return not any(ip in ipaddress.ip_network(x) for x in block.get("except") or [] if ipaddress.ip_network(x).version == ip.version)
    if ep.ns is None:
        return False
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    ns_ok = ep.ns == policy_ns if ns_sel is None else selects(ns_sel, ep.ns_labels())
    pod_ok = pod_sel is None or selects(pod_sel, ep.labels)
    return ns_ok and pod_ok


def port_matches(ports: list | None, dst: Endpoint, port: int, proto: str) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != proto:
            continue
        if "port" not in p:
            return True
        want = p["port"]
        if isinstance(want, str):
            want = dst.ports.get(want)
            if want is None:
                continue
        if int(want) <= port <= int(p.get("endPort", want)):
            return True
    return False


def policy_types(pol: dict) -> list[str]:
    spec = pol["spec"]
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


def side_allows(policies: list[dict], subject: Endpoint, other: Endpoint, dst: Endpoint, port: int, proto: str, kind: str) -> bool:
    """Whether `subject`'s policies of `kind` (Ingress/Egress) let this connection through."""
    if subject.ns is None:
        return True  # outside the cluster: no policy applies
    mine = [
        p for p in policies
        if p["metadata"].get("namespace") == subject.ns and kind in policy_types(p) and selects(p["spec"].get("podSelector", {}), subject.labels)
    ]
    if not mine:
        return True
    rules_key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    for p in mine:
        for rule in p["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            if (not peers or any(peer_matches(x, p["metadata"]["namespace"], other) for x in peers)) and port_matches(rule.get("ports"), dst, port, proto):
                return True
    return False


def allowed(policies: list[dict], src: Endpoint, dst: Endpoint, port: int, proto: str = "TCP") -> bool:
    return side_allows(policies, src, dst, dst, port, proto, "Egress") and side_allows(policies, dst, src, dst, port, proto, "Ingress")


def url_host_port(url: str) -> tuple[str, int]:
    m = re.match(r"^([A-Za-z0-9+.-]+)://(?:[^/?#]*@)?([^/?#:]+)(?::(\d+))?", url)
    if not m:
        raise NetFail(f"cannot read host and port of {url!r}")
    default = {"https": 443, "http": 80}.get(m.group(1), 6379)
    return m.group(2), int(m.group(3) or default)


def endpoint_for(host: str, ns: str, name: str, ip: str) -> Endpoint:
    """A Service host name: `svc.ns.svc[.cluster.local]` or `svc.ns` is a pod in ns;
    a single label is in `ns`; anything else is outside the cluster."""
    parts = host.split(".")
    if len(parts) == 1:
        return Endpoint(name, ip, ns, {"app": parts[0]})
    if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
        return Endpoint(name, ip, parts[1], {"app": parts[0]})
    return Endpoint(name, "203.0.113.50")


def check_network(docs: list[dict], label: str, gateway_labels: dict, ns: str, redis_labels: dict | None,
                  redis_urls: list[str], otlp_url: str | None) -> list[str]:
    """The connections the deployment must allow and refuse; returns what is wrong."""
    pols = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    if not pols:
        return [f"{label}: no NetworkPolicy: any pod in the cluster can reach Redis and write key records"]
    gw = Endpoint("a gateway pod", "10.42.0.10", ns, gateway_labels, {"http": 8080, "admin": 8001})
    other = Endpoint("another pod of the namespace", "10.42.0.30", ns, {"app": "other"})
    lookalike = Endpoint("a pod with the gateway's labels in another namespace", "10.42.9.9", "elsewhere", dict(gateway_labels))
    dns = Endpoint("kube-dns", "10.42.1.2", "kube-system", {"k8s-app": "kube-dns"})
    internet4 = Endpoint("a provider (IPv4)", "203.0.113.10")
    internet6 = Endpoint("a provider (IPv6)", "2001:db8::10")
    metadata = Endpoint("the cloud metadata address", "169.254.169.254")
    private = Endpoint("a private address", "10.1.2.3")
    in_cluster = Endpoint("a pod of another namespace", "10.42.5.5", "other-ns", {"app": "x"})
    want: list[tuple[Endpoint, Endpoint, int, str, bool]] = [
        (gw, dns, 53, "UDP", True),
        (gw, dns, 53, "TCP", True),
        (gw, internet4, 443, "TCP", True),
        (gw, internet6, 443, "TCP", True),
        (gw, internet4, 80, "TCP", False),
        (gw, internet4, 22, "TCP", False),
        (gw, metadata, 80, "TCP", False),
        (gw, metadata, 443, "TCP", False),
        (gw, private, 443, "TCP", False),
        (gw, in_cluster, 443, "TCP", False),
        (other, gw, 8080, "TCP", True),
        (other, gw, 8001, "TCP", True),
        (other, gw, 9000, "TCP", False),
    ]
    if redis_labels is not None:
        redis = Endpoint("the bundled Redis", "10.42.0.20", ns, redis_labels, {"redis": 6379})
        want += [
            (gw, redis, 6379, "TCP", True),
            (gw, redis, 6380, "TCP", False),
            (other, redis, 6379, "TCP", False),
            (lookalike, redis, 6379, "TCP", False),
            (in_cluster, redis, 6379, "TCP", False),
            (redis, internet4, 443, "TCP", False),
            (redis, dns, 53, "UDP", False),
            (redis, gw, 8001, "TCP", False),
        ]
    for i, u in enumerate(redis_urls):
        host, port = url_host_port(u)
        want.append((gw, endpoint_for(host, ns, f"Redis {host}", f"10.42.3.{i + 1}"), port, "TCP", True))
    if otlp_url:
        host, port = url_host_port(otlp_url)
        want.append((gw, endpoint_for(host, ns, f"the OTLP collector {host}", "10.42.7.7"), port, "TCP", True))
    problems = []
    for src, dst, port, proto, ok in want:
        got = allowed(pols, src, dst, port, proto)
        if got != ok:
            verb = "cannot reach" if ok else "can reach"
            problems.append(f"{label}: {src.name} {verb} {dst.name} ({dst.ip}) on {proto} {port}")
    return problems
