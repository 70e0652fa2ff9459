"""Prometheus series, GET /metrics, and their multiprocess files."""
