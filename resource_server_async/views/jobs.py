"""Routes of the jobs API family (filled in by its issue)."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
