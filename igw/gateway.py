"""The gateway's public HTTP API as igw calls it, and its error answers as exit statuses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests

from igw import errors
from igw.errors import CliError

TIMEOUT = 30.0
API = "/resource_server/v1"


def _message_of(body: Any) -> tuple[str, str]:
    """(code, message) of an error body in the OpenAI or the Anthropic dialect."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or error.get("type") or "error")
        return code, str(error.get("message") or code)
    return "error", str(body)[:500]


def _login_hint(body: Any) -> str:
    """What the user must do when a 401 body is a Globus Auth Requirements Error."""
    parameters = body.get("authorization_parameters") if isinstance(body, dict) else None
    if not isinstance(parameters, dict):
        return "Run `igw login` to sign in again."
    needs = []
    if parameters.get("session_required_single_domain"):
        domains = ", ".join(parameters["session_required_single_domain"])
        needs.append(f"an identity from {domains}")
    if parameters.get("session_required_policies"):
        needs.append(
            "the gateway's authentication policy ("
            + ", ".join(parameters["session_required_policies"])
            + ")"
        )
    wanted = " and ".join(needs) or "a new session"
    return (
        f"The gateway needs a Globus session with {wanted}. Run `igw login`: it asks Globus "
        "for exactly that session."
    )


def failure(answer: requests.Response, with_key: bool = False, gateway: str = "") -> CliError:
    """A refused request as a CliError: its message, and the exit status that says what to do."""
    try:
        body: Any = answer.json()
    except ValueError:
        body = answer.text
    code, message = _message_of(body)
    status = answer.status_code
    if status == 401:
        hint = (
            "Check the API key (IGW_API_KEY), or unset it to use your login."
            if with_key
            else _login_hint(body)
        )
        parameters = body.get("authorization_parameters") if isinstance(body, dict) else None
        return CliError(
            f"{message} ({code}). {hint}",
            errors.LOGIN_NEEDED,
            requirements=parameters if isinstance(parameters, dict) and not with_key else None,
            gateway=gateway,
        )
    if status == 403:
        return CliError(f"{message} ({code})", errors.FORBIDDEN)
    if status in (429, 502, 503, 504):
        retry = answer.headers.get("Retry-After")
        later = f" Retry in {retry} s." if retry else " Retry later."
        return CliError(f"{message} ({code}).{later}", errors.UNAVAILABLE)
    return CliError(f"{message} ({code}, HTTP {status})", errors.FAILED)


class Gateway:
    """One gateway, one credential (a Globus access token or a personal API key)."""

    def __init__(self, url: str, credential: str = "", with_key: bool = False) -> None:
        self.url = url
        self._with_key = with_key
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "igw"
        if credential:
            self._session.headers["Authorization"] = f"Bearer {credential}"

    def request(
        self, method: str, path: str, *, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        try:
            answer = self._session.request(
                method,
                self.url + path,
                timeout=kwargs.pop("timeout", TIMEOUT),
                stream=stream,
                **kwargs,
            )
        except requests.ConnectionError:
            raise CliError(
                f"Cannot reach the gateway at {self.url}. Check the URL (igw login --gateway "
                "URL) and your network.",
                errors.UNAVAILABLE,
            ) from None
        except requests.Timeout:
            raise CliError(
                f"The gateway at {self.url} did not answer in time.", errors.UNAVAILABLE
            ) from None
        if answer.status_code >= 400:
            raise failure(answer, self._with_key, self.url)
        return answer

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.request(method, path, **kwargs)
        try:
            return answer.json()
        except ValueError:
            raise CliError(
                f"The gateway answered {path} with something that is not JSON."
            ) from None

    def stream_events(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The `data:` events of a streamed POST, parsed, until `[DONE]`."""
        import json

        answer = self.request("POST", path, json=body, stream=True, timeout=(TIMEOUT, 600))
        with answer:
            for raw in answer.iter_lines():
                line = raw.decode("utf-8", errors="replace")
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if isinstance(event, dict) and "error" in event:
                    code, message = _message_of(event)
                    raise CliError(f"The answer stopped: {message} ({code})")
                if isinstance(event, dict):
                    yield event
