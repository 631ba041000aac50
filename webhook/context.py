"""What a rule or defaulter is given: the object under review and a read-only world."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from webhook.inventory import InventoryView
from webhook.objects import Resource
from webhook.policy import MeshSettings


# Not frozen: a frozen dataclass pays object.__setattr__ per field, and the engine makes
# one Context per rule on every request. Rules treat it as read-only.
@dataclass(slots=True)
class Context:
    """`resource` is the object under review; on DELETE it is the object being deleted
    (most rules have nothing to say then; a rule that guards other objects compares
    `before` with `inventory`). `inventory` is the world after the change (the new
    version in place of the old, a deleted object gone); `before` is the world before it.
    """

    resource: Resource
    operation: str  # CREATE | UPDATE | DELETE
    inventory: InventoryView
    before: InventoryView
    mesh: MeshSettings
    params: BaseModel
    raw: Mapping[str, Any]

    def resolve(self, host: str, namespace: str | None = None) -> str:
        from webhook.hosts import resolve

        return resolve(host, namespace or self.resource.namespace, self.mesh.cluster_domain)
