"""Register the project's cluster-side functions with Globus Compute and print their UUIDs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from resource_server_async.compute.base import ComputeError
from resource_server_async.compute.functions import INFERENCE, PROJECT_FUNCTIONS, ProjectFunction

# Where each function's UUID goes in the fixtures (CONTRACT.md §1).
_FIXTURE_FIELD = {
    "inference": 'fixtures/endpoints.json: "config": {"function_uuid": ...}',
    "pbs-status": 'fixtures/clusters.json: "config": {"qstat_function_uuid": ...}',
    "slurm-status": 'fixtures/clusters.json: "config": {"qstat_function_uuid": ...}',
    "batch": 'fixtures/endpoints.json: "config": {"batch_function_uuid": ...}',
}


class Command(BaseCommand):
    help = (
        "Register the cluster-side functions (compute_functions/) with Globus Compute, as the "
        "service identity of SERVICE_ACCOUNT_ID/SECRET, and print the UUIDs for the fixtures."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--function",
            action="append",
            choices=[function.name for function in PROJECT_FUNCTIONS],
            help="register only this function (repeatable; default: all)",
        )
        parser.add_argument(
            "--group", help="Globus group id to share the functions with (optional)"
        )
        parser.add_argument(
            "--client-id",
            help="register as this client instead of SERVICE_ACCOUNT_ID "
            "(its secret from SERVICE_ACCOUNT_SECRET)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from resource_server_async.compute.globus import Credentials, connect

        client_id = options["client_id"] or settings.SERVICE_ACCOUNT_ID
        if not client_id or not settings.SERVICE_ACCOUNT_SECRET:
            raise CommandError(
                "Set SERVICE_ACCOUNT_ID and SERVICE_ACCOUNT_SECRET (the identity that will "
                "submit the tasks) before registering functions."
            )
        names = options["function"] or [function.name for function in PROJECT_FUNCTIONS]
        chosen = [function for function in PROJECT_FUNCTIONS if function.name in names]
        try:
            client = connect(
                Credentials(client_id, settings.SERVICE_ACCOUNT_SECRET),
                settings.COMPUTE_SERVICE_TIMEOUT,
            ).sdk
        except ComputeError as exc:
            raise CommandError(str(exc)) from None
        for function in chosen:
            function_uuid = self._register(client, function, options["group"])
            self.stdout.write(f"{function.name:<13} {function_uuid}")
            self.stdout.write(f"{'':<13} -> {_FIXTURE_FIELD[function.name]}")
        if INFERENCE in chosen:
            self.stdout.write(
                "Endpoints run the inference function only if their config allows it: add its "
                "UUID to allowed_functions in the endpoint's config.yaml (see docs/clusters.md)."
            )

    def _register(self, client: Any, function: ProjectFunction, group: str | None) -> str:
        import globus_sdk

        try:
            # The whole module is sent as source: it is self-contained, and needs neither this
            # project nor the same Python version on the cluster.
            return str(
                client.register_source_code(
                    function.source(),
                    function.entry_point,
                    description=function.description,
                    group=group,
                )
            )
        except globus_sdk.GlobusAPIError as exc:
            raise CommandError(
                f"Globus Compute refused {function.name}: {exc.http_status} {exc.message}"
            ) from None
        except globus_sdk.NetworkError as exc:
            raise CommandError(f"cannot reach Globus Compute: {exc}") from None
