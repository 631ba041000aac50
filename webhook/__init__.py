"""meshwarden: admission policy server for Istio networking objects."""

__version__ = "0.1.0"
