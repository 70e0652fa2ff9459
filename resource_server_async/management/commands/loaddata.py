"""Django's loaddata, then a report of what the loaded catalog still lacks.

Row errors (slug, adapter, config) already stop the load in the pre_save check. Problems between
rows (an endpoint whose cluster is not loaded yet) are reported, not fatal: operators often load
endpoints.json and clusters.json with two separate commands.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.core.management.commands.loaddata import Command as DjangoLoaddata

from resource_server_async.validation import database_problems


class Command(DjangoLoaddata):
    help = DjangoLoaddata.help + (
        " Cluster and endpoint rows are validated: an invalid row stops the load and nothing is "
        "written; problems between rows are reported afterwards."
    )

    def loaddata(self, fixture_labels: Sequence[str]) -> None:
        super().loaddata(fixture_labels)
        for problem in database_problems():
            self.stderr.write(self.style.WARNING(f"{problem.level.upper()}: {problem}"))
