"""The HTTP API: the Starlette app, body reading, the OpenAPI document, the docs page, views."""
