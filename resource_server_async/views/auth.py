"""Routes of the auth API family (filled in by its issue)."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
