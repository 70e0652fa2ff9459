"""Authentication (who is calling) and authorization (may they use this cluster and endpoint)."""
