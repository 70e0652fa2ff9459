"""Usage from the records: the query, GET /v1/usage and usage_report."""
