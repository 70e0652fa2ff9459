"""Endpoint adapters: how the gateway runs a request on one model of one cluster."""
