"""App configuration: registers the row validation signals and the system checks."""

from django.apps import AppConfig


class ResourceServerAsyncConfig(AppConfig):
    name = "resource_server_async"
    verbose_name = "Inference gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from resource_server_async import checks, signals  # noqa: F401  (registration)
