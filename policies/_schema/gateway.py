"""Gateway (istiod `ValidateGateway`, `validateServer`, `validateTLSOptions`, plus the CRD's
enums)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies._schema.common import (
    FIX_PORT,
    HTTP_PROTOCOLS,
    PROTOCOLS,
    TLS_PROTOCOLS,
    Report,
    check_port,
    enum,
    get,
    ip_problem,
    is_dns1123_label,
    namespaced_host_problems,
    q,
    required,
    unix_address_problem,
)
from webhook.findings import Path
from webhook.models import Gateway, GatewayPort, Server, ServerTLSSettings

TLS_MODES = ("PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL")
_UNIX = "unix://"
_FIX_HOST = "use `[namespace/]dnsName` with a full DNS name or a `*.` wildcard, e.g. `*/api.example.com`"
_FIX_CERTS = "set `credentialName` (a Secret with the certificate), or the certificate file fields"


def validate(report: Report, spec: Gateway, name: str, raw_spec: Mapping[str, Any]) -> None:
    if not is_dns1123_label(name):
        report.error(
            ("metadata", "name"), f"invalid gateway name: {q(name)}", "name the Gateway with a DNS-1123 label"
        )
    if not spec.servers:
        report.error(
            ("spec", "servers"), "gateway must have at least one server", "add a server with a port and hosts"
        )
    port_names: set[str] = set()
    raw_servers = get(raw_spec, "servers")
    for i, server in enumerate(spec.servers):
        path = ("spec", "servers", i)
        raw_server = raw_servers[i] if isinstance(raw_servers, list) and i < len(raw_servers) else None
        # `credentialNames` (a list) is newer than the model; it counts as a credential too.
        credentials = bool(server.tls and server.tls.credential_name) or bool(
            get(get(raw_server, "tls"), "credentialNames")
        )
        _server(report, path, server, credentials)
        port = server.port
        if port is not None:
            port_name = port.name or ""
            if port_name in port_names:
                report.error(
                    (*path, "port", "name"),
                    f"port names in servers must be unique: duplicate name {port_name}",
                    "give each server's port its own name",
                )
            port_names.add(port_name)
            if (
                (port.protocol or "").lower() not in HTTP_PROTOCOLS
                and server.tls is not None
                and server.tls.https_redirect
            ):
                report.warn(
                    (*path, "tls", "httpsRedirect"),
                    "tls.httpsRedirect should only be used with http servers",
                    "remove `httpsRedirect` from a non-HTTP server",
                )


def _server(report: Report, path: Path, server: Server, credentials: bool) -> None:
    if not server.hosts:
        report.error(
            (*path, "hosts"),
            "server config must contain at least one host",
            "list the hosts the server exposes",
        )
    for j, host in enumerate(server.hosts):
        for problem in namespaced_host_problems(host, True):
            report.error((*path, "hosts", j), problem, _FIX_HOST)
    port_ok = _port(report, (*path, "port"), server.port, server.bind or "")
    _bind(report, path, server.port, server.bind or "")
    _tls_options(report, (*path, "tls"), server.tls, credentials)
    if not port_ok or server.port is None:
        return
    protocol = (server.port.protocol or "").lower()
    if protocol in TLS_PROTOCOLS and server.tls is None:
        report.error(
            (*path, "tls"),
            "server must have TLS settings for HTTPS/TLS protocols",
            "add `tls` (e.g. `mode: PASSTHROUGH`, or `mode: SIMPLE` with `credentialName`)",
        )
    elif protocol not in TLS_PROTOCOLS and server.tls is not None:
        tls = server.tls
        if protocol in HTTP_PROTOCOLS:
            passthrough = (tls.mode or "PASSTHROUGH") in ("PASSTHROUGH", "AUTO_PASSTHROUGH")
            if not passthrough or tls.ca_certificates or tls.private_key or tls.server_certificate:
                report.error(
                    (*path, "tls"),
                    "server cannot have TLS settings for plain text HTTP ports",
                    "use protocol HTTPS for TLS, or keep only `httpsRedirect` on an HTTP server",
                )
        else:
            report.error(
                (*path, "tls"),
                "server cannot have TLS settings for non HTTPS/TLS ports",
                "use protocol HTTPS or TLS, or remove `tls`",
            )


def _port(report: Report, path: Path, port: GatewayPort | None, bind: str) -> bool:
    if port is None:
        report.error(path, "port is required", "add `port` with number, name and protocol")
        return False
    ok = True
    if port.protocol is None:
        report.error(
            (*path, "protocol"), required((*path, "protocol")), "set the protocol, e.g. HTTP or HTTPS"
        )
        ok = False
    elif port.protocol.lower() not in PROTOCOLS:
        report.error(
            (*path, "protocol"),
            f"invalid protocol {q(port.protocol)}, supported protocols are "
            "HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
            "use HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TLS, TCP, MONGO, REDIS or MYSQL",
        )
        ok = False
    number = port.number if port.number is not None else 0
    if (number > 0 or not bind.startswith(_UNIX)) and not check_port(report, (*path, "number"), number):
        ok = False
    if port.target_port is not None and port.target_port > 0:
        report.error((*path, "targetPort"), "targetPort has no impact on Gateways", "remove `targetPort`")
        ok = False
    if not port.name:
        report.error((*path, "name"), "port name must be set", "name the port, e.g. `https`")
        ok = False
    return ok


def _bind(report: Report, path: Path, port: GatewayPort | None, bind: str) -> None:
    if bind.startswith(_UNIX):
        problem = unix_address_problem(bind[len(_UNIX) :])
        if problem:
            report.error((*path, "bind"), problem, "bind to `unix:///absolute/path`")
        if port is not None and port.number:
            report.error((*path, "port", "number"), "port number must be 0 for unix domain socket", FIX_PORT)
    elif bind:
        problem = ip_problem(bind)
        if problem:
            report.error((*path, "bind"), problem, "bind to an IP address")


def _tls_options(report: Report, path: Path, tls: ServerTLSSettings | None, credentials: bool) -> None:
    if tls is None:
        return
    enum(report, (*path, "mode"), tls.mode, TLS_MODES)
    mode = tls.mode or "PASSTHROUGH"
    certs = (tls.server_certificate, tls.private_key, tls.ca_certificates, tls.credential_name)
    if mode == "ISTIO_MUTUAL":
        for value, field, what in (
            (tls.server_certificate, "serverCertificate", "server certificate"),
            (tls.private_key, "privateKey", "private key"),
            (tls.ca_certificates, "caCertificates", "CA bundle"),
            (tls.credential_name, "credentialName", "credentialName"),
        ):
            if value:
                report.error(
                    (*path, field),
                    f"ISTIO_MUTUAL TLS cannot have associated {what}",
                    "remove the certificate fields: ISTIO_MUTUAL uses the mesh's certificates",
                )
        return
    if mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") and any(certs):
        report.warn(
            path,
            f"{mode} mode does not use certificates, they will be ignored",
            "remove the certificate fields",
        )
    if mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") and credentials:
        return
    if mode == "SIMPLE":
        if not tls.server_certificate:
            report.error((*path, "serverCertificate"), "SIMPLE TLS requires a server certificate", _FIX_CERTS)
        if not tls.private_key:
            report.error((*path, "privateKey"), "SIMPLE TLS requires a private key", _FIX_CERTS)
    elif mode in ("MUTUAL", "OPTIONAL_MUTUAL"):
        if not tls.server_certificate:
            report.error((*path, "serverCertificate"), "MUTUAL TLS requires a server certificate", _FIX_CERTS)
        if not tls.private_key:
            report.error((*path, "privateKey"), "MUTUAL TLS requires a private key", _FIX_CERTS)
        if not tls.ca_certificates:
            report.error((*path, "caCertificates"), "MUTUAL TLS requires a client CA bundle", _FIX_CERTS)
