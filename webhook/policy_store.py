"""The policy in force, reloaded when its file changes without dropping a request.

Requests read `current` (one attribute read); a reload builds and validates the new policy
aside and swaps it in whole, so a request sees either the old policy or the new one. A
file that does not validate is refused and the old policy stays in force.
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
            self.failed_reloads += 1
            log.error("policy reload refused, keeping policy %s: %s", self.current.sha256[:12], exc)
            for cb in self.on_reload:
                cb(None, str(exc))
            return False
        if policy.sha256 == self.current.sha256:
            return False
        self.current = policy
        self.reloads += 1
        log.info("policy reloaded from %s (sha256 %s)", self.path, policy.sha256[:12])
        for cb in self.on_reload:
            cb(policy, None)
        return True
