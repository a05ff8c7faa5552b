"""Prometheus metrics and the HTTP endpoints that serve them with /healthz and /readyz."""
