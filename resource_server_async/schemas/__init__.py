"""Request schemas, one module per API family; each exposes a `REQUESTS` table by operation."""
