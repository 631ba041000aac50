"""Istio's own validation of the objects in scope, one module per kind (istio/istio
pkg/config/validation and the CRDs' schema rules), used by the `istio-schema` rule."""
