"""The policy in force, reloaded when its file changes without dropping a request.

Requests read `current` (one attribute read); a reload builds and validates the new policy
aside and swaps it in whole, so a request sees either the old policy or the new one. A
file that does not validate is refused and the old policy stays in force, as is one that a
guard refuses: a change the running server cannot take without a restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from webhook.policy import Policy, PolicyError, load

log = logging.getLogger("meshwarden.policy")


class PolicyStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.current: Policy = load(self.path)  # PolicyError here stops the start
        self._stamp = self._stat()
        self.reloads = 0
        self.failed_reloads = 0
        self.on_reload: list[Callable[[Policy | None, str | None], None]] = []
        # (in force, new) -> why the new policy cannot take effect now, or None
        self.guards: list[Callable[[Policy, Policy], str | None]] = []

    def _stat(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)  # follows the ..data symlink a mounted ConfigMap uses
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def check(self) -> bool:
        """Reload if the file changed; True when a new policy took effect."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = load(self.path)
        except PolicyError as exc:
            return self._refuse(str(exc))
        if policy.sha256 == self.current.sha256:
            return False
        for guard in self.guards:
            reason = guard(self.current, policy)
            if reason is not None:
                return self._refuse(f"{self.path}: {reason}")
        self.current = policy
        self.reloads += 1
        log.info("policy reloaded from %s (sha256 %s)", self.path, policy.sha256[:12])
        for cb in self.on_reload:
            cb(policy, None)
        return True

    def _refuse(self, reason: str) -> bool:
        self.failed_reloads += 1
        log.error("policy reload refused, keeping policy %s: %s", self.current.sha256[:12], reason)
        for cb in self.on_reload:
            cb(None, reason)
        return False


def same_inventory_settings(current: Policy, new: Policy) -> str | None:
    """A guard for a server whose inventory was built for the mesh settings at start: the
    root namespace (where mesh config is watched or read) and the cluster domain (how hosts
    are indexed) cannot change under it."""
    problems = [
        f"mesh.{name} changes from {old!r} to {now!r}"
        for name, old, now in (
            ("rootNamespace", current.mesh.root_namespace, new.mesh.root_namespace),
            ("clusterDomain", current.mesh.cluster_domain, new.mesh.cluster_domain),
        )
        if old != now
    ]
    if not problems:
        return None
    return (
        "; ".join(problems)
        + ": the inventory was built for the settings in force at start; restart meshwarden to apply them"
    )
