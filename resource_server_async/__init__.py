"""The gateway's Django app; its label `resource_server_async` is fixed by the fixture format."""
