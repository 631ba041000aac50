"""Host names as Istio treats them (istio/istio pkg/config/host/name.go).

Wildcards are prefix-only: `*.foo.com` matches `a.b.foo.com` but not `foo.com`; `*`
matches everything. Short names (no dot) resolve in the namespace of the rule that uses
them, not of the service.
"""

from __future__ import annotations


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def resolve(host: str, namespace: str, domain: str = "cluster.local") -> str:
    """FQDN of `host` as written in an object of `namespace` (DR host, VS hosts and
    destinations): `reviews` in `default` is `reviews.default.svc.cluster.local`."""
    if "." in host or host == "*" or not host:
        return host.lower()
    return f"{host}.{namespace}.svc.{domain}".lower()


def matches(a: str, b: str) -> bool:
    """Symmetric overlap test (Istio `Name.Matches`)."""
    aw, bw = is_wildcard(a), is_wildcard(b)
    if aw and bw:
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    if aw:
        return b.endswith(a[1:])
    if bw:
        return a.endswith(b[1:])
    return a == b


def subset_of(a: str, b: str) -> bool:
    """True when every name `a` matches is also matched by `b` (Istio `Name.SubsetOf`)."""
    if is_wildcard(a):
        return is_wildcard(b) and a[1:].endswith(b[1:])
    if is_wildcard(b):
        return a.endswith(b[1:])
    return a == b


def specificity(host: str) -> tuple[int, int]:
    """Sort key: exact names beat wildcards, then longer wildcards beat shorter
    (Istio `MostSpecificHostMatch`)."""
    return (0 if is_wildcard(host) else 1, len(host))


def split_namespaced(host: str) -> tuple[str, str]:
    """`ns/name` (Gateway and Sidecar hosts) -> (ns, name); the namespace defaults to `*`."""
    ns, sep, name = host.partition("/")
    return (ns, name) if sep else ("*", host)
