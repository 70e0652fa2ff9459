"""The inference gateway's Django project: settings, admin URLs and the one ASGI entry point."""
