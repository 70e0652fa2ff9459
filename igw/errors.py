"""The one error type of the command and its exit statuses (docs/cli.md lists them)."""

from __future__ import annotations

from typing import Any

# Exit statuses: scripts branch on these, so they never change meaning.
OK = 0
FAILED = 1  # the gateway refused the request (bad input, not found, limits)
USAGE = 2  # the command line itself is wrong (argparse uses 2 as well)
LOGIN_NEEDED = 3  # no login, it expired, or the gateway asks for a new session: `igw login`
FORBIDDEN = 4  # logged in, but not allowed (group, model, key scope)
UNAVAILABLE = 5  # the gateway or Globus cannot be reached or is busy: retry later


class CliError(Exception):
    """A failure to report in one message, with the exit status that says what to do."""

    def __init__(
        self,
        message: str,
        status: int = FAILED,
        requirements: dict[str, Any] | None = None,
        gateway: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        # A 401's Globus authorization parameters (a GARE), for the next login.
        self.requirements = requirements
        self.gateway = gateway
