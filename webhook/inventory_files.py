"""The file-backed inventory: every in-scope Istio object in YAML files (`--inventory-from`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from webhook.inventory import MemoryInventory
from webhook.objects import Resource, parse, scope_kind
from webhook.policy import Policy
from webhook.sources import iter_documents

log = logging.getLogger("meshwarden.inventory")


def load_inventory(paths: Sequence[str], policy: Policy) -> tuple[MemoryInventory, int]:
    """A MemoryInventory of the in-scope objects under `paths`, and how many documents
    were left out (out of scope, or not parseable: logged)."""
    resources: list[Resource] = []
    left_out = 0
    for doc in iter_documents(paths):
        kind = scope_kind(doc.raw, policy.mesh.root_namespace)
        if kind is None:
            left_out += 1
            continue
        res = parse(doc.raw, kind)
        if isinstance(res, Resource):
            resources.append(res)
        else:
            left_out += 1
            log.warning("%s:%s: not added to the inventory: %s", doc.file, doc.line, res[0].message)
    return MemoryInventory(resources, domain=policy.mesh.cluster_domain), left_out
