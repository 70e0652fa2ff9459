"""Thin HTTP handlers, one module per API family; each exposes a `routes` list."""
