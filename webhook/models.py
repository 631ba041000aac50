"""Pydantic models of the Istio fields the rules read.

Permissive about fields they do not know (Istio adds fields every release: they are
ignored here and kept in the raw object), strict about the ones they do: a wrong type is
reported with its JSON path by the `istio-schema` rule. `None` always means "absent",
which matters in Istio: `tls: {}` is not the same as no `tls` at all.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, TypeAdapter
from pydantic.alias_generators import to_camel

# pydantic validates a TypedDict only from typing_extensions before Python 3.12.
from typing_extensions import TypedDict


class IstioModel(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True, frozen=True)


Labels = dict[StrictStr, StrictStr]


# The types a VirtualService repeats for every route (the HTTP route itself, destinations,
# matches, retries) are validated TypedDicts rather than models: the same strict checks and
# JSON paths, at a third of a model instance's cost. Their keys are the JSON names, an
# absent field is an absent key (read them with `.get`), and extra keys are dropped.


# --- shared ---------------------------------------------------------------------------


class PortSelector(TypedDict, total=False):
    number: StrictInt | None


class Destination(TypedDict, total=False):
    """A route target: VirtualService destinations and mirrors, the Sidecar egress proxy."""

    host: StrictStr | None
    subset: StrictStr | None
    port: PortSelector | None


# A target found outside the modelled fields (an entry of `mirrors`, a delegate's route).
DESTINATION: TypeAdapter[Destination] = TypeAdapter(Destination)


class WorkloadSelector(IstioModel):
    labels: Labels | None = None


class LabelSelector(IstioModel):
    match_labels: Labels | None = None


# --- ServiceEntry / WorkloadEntry ------------------------------------------------------


class ServicePort(IstioModel):
    number: StrictInt | None = None
    protocol: StrictStr | None = None
    name: StrictStr | None = None
    target_port: StrictInt | None = None


class WorkloadEntry(IstioModel):
    address: StrictStr | None = None
    ports: dict[StrictStr, StrictInt] | None = None
    labels: Labels | None = None
    network: StrictStr | None = None
    locality: StrictStr | None = None
    weight: StrictInt | None = None
    service_account: StrictStr | None = None


class ServiceEntry(IstioModel):
    hosts: list[StrictStr] = Field(default_factory=list)
    addresses: list[StrictStr] = Field(default_factory=list)
    ports: list[ServicePort] = Field(default_factory=list)
    location: StrictStr | None = None
    resolution: StrictStr | None = None
    endpoints: list[WorkloadEntry] = Field(default_factory=list)
    workload_selector: WorkloadSelector | None = None
    export_to: list[StrictStr] | None = None
    subject_alt_names: list[StrictStr] | None = None

    @property
    def is_mesh_external(self) -> bool:
        # MESH_EXTERNAL is enum 0: the default when `location` is absent.
        return (self.location or "MESH_EXTERNAL") == "MESH_EXTERNAL"

    @property
    def effective_resolution(self) -> str:
        return self.resolution or "NONE"


# --- DestinationRule -------------------------------------------------------------------


class ClientTLSSettings(IstioModel):
    mode: StrictStr | None = None
    client_certificate: StrictStr | None = None
    private_key: StrictStr | None = None
    ca_certificates: StrictStr | None = None
    credential_name: StrictStr | None = None
    subject_alt_names: list[StrictStr] | None = None
    sni: StrictStr | None = None
    insecure_skip_verify: StrictBool | None = None
    ca_crl: StrictStr | None = None

    @property
    def effective_mode(self) -> str:
        # DISABLE is enum 0, so `tls: {}` means DISABLE.
        return self.mode or "DISABLE"

    @property
    def originates(self) -> bool:
        return self.effective_mode in ("SIMPLE", "MUTUAL")


class OutlierDetection(IstioModel):
    consecutive_errors: StrictInt | None = None
    consecutive_5xx_errors: StrictInt | None = Field(default=None, alias="consecutive5xxErrors")
    consecutive_gateway_errors: StrictInt | None = None
    consecutive_local_origin_failures: StrictInt | None = None
    split_external_local_origin_errors: StrictBool | None = None
    interval: StrictStr | None = None
    base_ejection_time: StrictStr | None = None
    max_ejection_percent: StrictInt | None = None
    min_health_percent: StrictInt | None = None


class PortTrafficPolicy(IstioModel):
    port: PortSelector | None = None
    load_balancer: dict | None = None
    connection_pool: dict | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TrafficPolicy(IstioModel):
    load_balancer: dict | None = None
    connection_pool: dict | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: list[PortTrafficPolicy] = Field(default_factory=list)
    tunnel: dict | None = None
    proxy_protocol: dict | None = None
    retry_budget: dict | None = None


class Subset(IstioModel):
    name: StrictStr | None = None
    labels: Labels | None = None
    traffic_policy: TrafficPolicy | None = None


class DestinationRule(IstioModel):
    host: StrictStr | None = None
    traffic_policy: TrafficPolicy | None = None
    subsets: list[Subset] = Field(default_factory=list)
    export_to: list[StrictStr] | None = None
    workload_selector: LabelSelector | None = None

    def subset(self, name: str) -> Subset | None:
        for s in self.subsets:
            if s.name == name:
                return s
        return None


# --- VirtualService --------------------------------------------------------------------


class RouteDestination(TypedDict, total=False):
    destination: Destination | None
    weight: StrictInt | None


class HTTPMatchRequest(TypedDict, total=False):
    # uri, headers and the like are not modelled: a match that sets none of these is {}.
    name: StrictStr | None
    port: StrictInt | None
    gateways: list[StrictStr] | None
    sourceLabels: Labels | None
    sourceNamespace: StrictStr | None


class HTTPRetry(TypedDict, total=False):
    attempts: StrictInt | None
    perTryTimeout: StrictStr | None
    retryOn: StrictStr | None


class Delegate(IstioModel):
    name: StrictStr | None = None
    namespace: StrictStr | None = None


class HTTPRoute(TypedDict, total=False):
    name: StrictStr | None
    match: list[HTTPMatchRequest]
    route: list[RouteDestination]
    redirect: dict | None
    directResponse: dict | None
    delegate: Delegate | None
    rewrite: dict | None
    timeout: StrictStr | None
    retries: HTTPRetry | None
    fault: dict | None
    mirror: Destination | None
    mirrors: list[dict] | None


class TLSMatchAttributes(IstioModel):
    sni_hosts: list[StrictStr] = Field(default_factory=list)
    port: StrictInt | None = None
    gateways: list[StrictStr] | None = None
    source_labels: Labels | None = None
    source_namespace: StrictStr | None = None
    destination_subnets: list[StrictStr] | None = None


class TLSRoute(IstioModel):
    match: list[TLSMatchAttributes] = Field(default_factory=list)
    route: list[RouteDestination] = Field(default_factory=list)


class L4MatchAttributes(IstioModel):
    port: StrictInt | None = None
    gateways: list[StrictStr] | None = None
    source_labels: Labels | None = None
    source_namespace: StrictStr | None = None
    destination_subnets: list[StrictStr] | None = None


class TCPRoute(IstioModel):
    match: list[L4MatchAttributes] = Field(default_factory=list)
    route: list[RouteDestination] = Field(default_factory=list)


class VirtualService(IstioModel):
    hosts: list[StrictStr] = Field(default_factory=list)
    gateways: list[StrictStr] | None = None
    http: list[HTTPRoute] = Field(default_factory=list)
    tls: list[TLSRoute] = Field(default_factory=list)
    tcp: list[TCPRoute] = Field(default_factory=list)
    export_to: list[StrictStr] | None = None

    @property
    def effective_gateways(self) -> list[str]:
        # An absent `gateways` means the sidecars: [mesh].
        return self.gateways if self.gateways else ["mesh"]


# --- Gateway ---------------------------------------------------------------------------


class GatewayPort(IstioModel):
    number: StrictInt | None = None
    protocol: StrictStr | None = None
    name: StrictStr | None = None
    target_port: StrictInt | None = None


class ServerTLSSettings(IstioModel):
    mode: StrictStr | None = None
    https_redirect: StrictBool | None = None
    credential_name: StrictStr | None = None
    server_certificate: StrictStr | None = None
    private_key: StrictStr | None = None
    ca_certificates: StrictStr | None = None


class Server(IstioModel):
    port: GatewayPort | None = None
    hosts: list[StrictStr] = Field(default_factory=list)
    tls: ServerTLSSettings | None = None
    name: StrictStr | None = None
    bind: StrictStr | None = None


class Gateway(IstioModel):
    selector: Labels | None = None
    servers: list[Server] = Field(default_factory=list)


# --- Sidecar and mesh config -----------------------------------------------------------


class OutboundTrafficPolicy(IstioModel):
    # REGISTRY_ONLY is enum 0, so `outboundTrafficPolicy: {}` means REGISTRY_ONLY.
    mode: StrictStr | None = None
    egress_proxy: Destination | None = None


class IstioEgressListener(IstioModel):
    port: ServicePort | None = None
    bind: StrictStr | None = None
    capture_mode: StrictStr | None = None
    hosts: list[StrictStr] = Field(default_factory=list)


class Sidecar(IstioModel):
    workload_selector: WorkloadSelector | None = None
    egress: list[IstioEgressListener] = Field(default_factory=list)
    ingress: list[dict] = Field(default_factory=list)
    outbound_traffic_policy: OutboundTrafficPolicy | None = None


class MeshConfig(IstioModel):
    """The part of MeshConfig the rules read (ConfigMap `mesh` key, IstioOperator)."""

    outbound_traffic_policy: OutboundTrafficPolicy | None = None
    root_namespace: StrictStr | None = None


SPEC_MODELS: dict[str, type[IstioModel]] = {
    "ServiceEntry": ServiceEntry,
    "DestinationRule": DestinationRule,
    "VirtualService": VirtualService,
    "Gateway": Gateway,
    "Sidecar": Sidecar,
    "WorkloadEntry": WorkloadEntry,
}
