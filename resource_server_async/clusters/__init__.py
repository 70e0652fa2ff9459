"""Cluster adapters: how the gateway learns the state of a cluster and its jobs."""
