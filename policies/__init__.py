"""The organisation's rules as code: one module per rule or defaulter.

Importing this package registers them all (webhook.registry). `policy.yaml` beside this
file is the default policy configuration that names which run and how.
"""

from policies import (  # noqa: F401
    default_outlier_detection,
    default_route_timeout,
    external_tls_origination,
    istio_schema,
    no_allow_any_outbound,
    wildcard_host_egress_gateway,
)
