"""The in-process snapshot of clusters and endpoints, row validation, fixture files, adapters."""
