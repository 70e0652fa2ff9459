"""The inference function: runs on the cluster beside the model server (CONTRACT.md §3).

Registered with Globus Compute as source code (`manage.py register_functions`) and executed on
nodes where this project is not installed, so the module is self-contained: standard library
and `requests` only. The gateway's local executor imports and calls the same function.

Configuration comes from the worker's environment (the endpoint's `worker_init`):

- `INFERENCE_API_BASE_URL`: the model server, default `https://127.0.0.1:{api_port}`.
- `INFERENCE_TLS_VERIFY`: `false` (default: local servers use self-signed certificates),
  `true`, or the path of a CA bundle.
- `INFERENCE_API_KEY` (or `OPENAI_API_KEY`): sent as a bearer key when set.
- `INFERENCE_CONNECT_TIMEOUT` (10 s), `INFERENCE_READ_TIMEOUT` (600 s, a whole non-streamed
  answer), `INFERENCE_STREAM_IDLE_TIMEOUT` (120 s between streamed bytes).
- `INTERNAL_STREAMING_SECRET`: the gateway's side-channel secret (streaming only).
- `STREAMING_TLS_VERIFY`: verify the gateway's certificate (`true` by default, or a CA bundle).
- `STREAMING_POST_TIMEOUT` (10 s): one side-channel POST.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests

STREAM_KEYS = (
    "streaming_server_host",
    "streaming_server_port",
    "streaming_server_protocol",
    "stream_task_id",
    "stream_task_token",
)
# Longest error text sent back: an inference server's error body, not a log file.
MAX_ERROR_TEXT = 2000
# Streamed lines are sent in batches: the first at once, then at least this often (a line
# waits at most this long, whenever the next one comes).
BATCH_SECONDS = 0.05
BATCH_LINES = 32
BATCH_BYTES = 16 * 1024
# Side-channel answers that mean "try this POST again shortly".
RETRY_STATUSES = (429, 502, 503, 504)
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)


class InferenceServerError(Exception):
    """The model server answered with an error status. The message format is the one deployed
    functions raise, which the gateway parses to give the caller the same status and message."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(
            f"API request failed with status code: {status}\nResponse text: {text[:MAX_ERROR_TEXT]}"
        )
        self.status = status


class SideChannelError(Exception):
    """The gateway's side channel refused or could not take a POST."""


class StreamClosed(SideChannelError):
    """The gateway no longer wants this stream (the client went away or it timed out)."""


class PostTooLarge(SideChannelError):
    """The gateway refused a POST as larger than its limit (413)."""


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _seconds(name: str, default: float) -> float:
    try:
        return float(_setting(name, str(default)))
    except ValueError:
        return default


def _verify(name: str, default: str) -> bool | str:
    value = _setting(name, default)
    if value.lower() in ("0", "false", "no", "off"):
        return False
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    return value  # a CA bundle path


def _quiet_insecure_warnings() -> None:
    # Unverified TLS to the node's own loopback server is the documented default; warning on
    # every request would flood the worker's log.
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def inference_function(parameters: dict[str, Any]) -> str:
    """Run one request on the local model server; returns its JSON answer as text.

    `parameters["model_params"]` is the client's body plus `openai_endpoint`, `api_port` and,
    when streaming, where and how to push chunks back to the gateway.
    """
    started = time.time()
    if not isinstance(parameters, dict) or not isinstance(parameters.get("model_params"), dict):
        raise ValueError("Missing required parameter: 'model_params'")
    body = dict(parameters["model_params"])  # a copy: the caller's dict stays as it was
    operation = body.pop("openai_endpoint", None)
    port = body.pop("api_port", None)
    if not isinstance(operation, str) or not operation:
        raise ValueError("Missing required parameter: 'model_params.openai_endpoint'")
    if port is None:
        raise ValueError("Missing required parameter: 'model_params.api_port'")
    target = {key: body.pop(key, None) for key in STREAM_KEYS}
    base = _setting("INFERENCE_API_BASE_URL", "https://127.0.0.1:{api_port}")
    base = base.format(api_port=port).rstrip("/")
    verify = _verify("INFERENCE_TLS_VERIFY", "false")
    if verify is False:
        _quiet_insecure_warnings()
    session = requests.Session()
    # The model server is on this node: never through the site's HTTP proxy.
    session.trust_env = False
    session.verify = verify
    key = _setting("INFERENCE_API_KEY", _setting("OPENAI_API_KEY", ""))
    if key:
        session.headers["Authorization"] = f"Bearer {key}"
    try:
        if "health" in operation.lower():
            return _health(session, base, operation)
        url = f"{base}/v1/{operation.lstrip('/')}"
        if body.get("stream"):
            return _stream(session, url, body, target, started)
        return _complete(session, url, body, started)
    finally:
        session.close()


def _timeouts(read_name: str, read_default: float) -> tuple[float, float]:
    return (
        _seconds("INFERENCE_CONNECT_TIMEOUT", 10.0),
        _seconds(read_name, read_default),
    )


def _health(session: requests.Session, base: str, operation: str) -> str:
    path = operation.replace("../", "").replace("v1/", "").lstrip("/")
    response = session.get(f"{base}/{path}", timeout=_timeouts("INFERENCE_READ_TIMEOUT", 30.0))
    if response.status_code >= 400:
        raise InferenceServerError(response.status_code, response.text)
    return json.dumps({"status": "ok", "status_code": response.status_code})


def _with_metrics(answer: dict[str, Any], started: float) -> dict[str, Any]:
    elapsed = time.time() - started
    usage = answer.get("usage")
    tokens = usage.get("total_tokens", 0) if isinstance(usage, dict) else 0
    answer["response_time"] = elapsed
    answer["throughput_tokens_per_second"] = tokens / elapsed if elapsed > 0 and tokens else 0
    return answer


def _complete(session: requests.Session, url: str, body: dict[str, Any], started: float) -> str:
    response = session.post(url, json=body, timeout=_timeouts("INFERENCE_READ_TIMEOUT", 600.0))
    if response.status_code >= 400:
        raise InferenceServerError(response.status_code, response.text)
    try:
        answer = response.json()
    except ValueError:
        raise InferenceServerError(
            502, f"the model server answered with a body that is not JSON: {response.text[:200]}"
        ) from None
    if not isinstance(answer, dict):
        raise InferenceServerError(502, "the model server answered with JSON that is not an object")
    return json.dumps(_with_metrics(answer, started))


class SideChannel:
    """POSTs a stream's chunks, error or end to the gateway (CONTRACT.md §3).

    One POST per batch of lines, so its cost is per token for a fast model: over one kept
    connection with the standard library's http.client, about 0.1 ms of the node's CPU per POST
    against 0.75 ms through a requests Session (which re-reads the proxy settings and .netrc,
    merges settings and runs hooks at every call; bench/compute_probe.py's chunks are stamped
    before their POST, so this was also most of the relay time the bench measured). When the
    environment routes the gateway through a proxy, requests does the POSTs: it knows the
    proxy settings' every form.
    """

    def __init__(self, target: dict[str, Any]) -> None:
        missing = [key for key in STREAM_KEYS if key != "streaming_server_protocol"]
        missing = [key for key in missing if not target.get(key)]
        if missing:
            raise ValueError(f"Streaming requires the parameters: {', '.join(missing)}")
        secret = os.environ.get("INTERNAL_STREAMING_SECRET", "").strip()
        if not secret:
            raise ValueError(
                "INTERNAL_STREAMING_SECRET is not set on this endpoint, so streamed chunks "
                "cannot be sent to the gateway"
            )
        self.protocol = target.get("streaming_server_protocol") or "https"
        self.host = str(target["streaming_server_host"])
        self.port = int(target["streaming_server_port"])
        self.path = "/resource_server/api/streaming"
        self.base = f"{self.protocol}://{self.host}:{self.port}{self.path}"
        self.task_id = str(target["stream_task_id"])
        self.verify = _verify("STREAMING_TLS_VERIFY", "true")
        self.timeout = _seconds("STREAMING_POST_TIMEOUT", 10.0)
        self.headers = {
            "Content-Type": "application/json",
            "X-Internal-Secret": secret,
            "X-Stream-Task-Token": str(target["stream_task_token"]),
        }
        self.session: requests.Session | None = None
        if _proxied(self.base):
            self.session = requests.Session()
            self.session.verify = self.verify
            self.session.headers.update(self.headers)
        self.connection: http.client.HTTPConnection | None = None  # kept across the posts

    def data(self, text: str) -> None:
        self._post("data", {"task_id": self.task_id, "data": text, "type": "data"})

    def error(self, message: str) -> None:
        self._post("error", {"task_id": self.task_id, "error": message, "type": "error"})

    def done(self) -> None:
        self._post("done", {"task_id": self.task_id, "type": "done"})

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        self._disconnect()

    def _post(self, kind: str, payload: dict[str, Any]) -> None:
        url = f"{self.base}/{kind}/"
        body = json.dumps(payload).encode()
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                status, retry_after, text = self._send(f"{self.path}/{kind}/", url, body)
            except (OSError, http.client.HTTPException) as exc:  # requests' errors too
                if _maybe_taken(exc):
                    # It may have been taken; sending it again could repeat it. Give up instead.
                    raise SideChannelError(f"the gateway at {url} did not answer in time") from None
                # Refused or reset before an answer: the chunk was not taken; try again.
                if delay is None:
                    raise SideChannelError(f"cannot reach the gateway at {url}: {exc}") from None
                time.sleep(delay)
                continue
            if status == 200:
                return
            if status in (404, 410):
                raise StreamClosed(f"the gateway closed stream {self.task_id}")
            if status == 413:
                raise PostTooLarge(f"the gateway refused a {kind} POST as too large")
            if status in RETRY_STATUSES and delay is not None:
                time.sleep(min(float(retry_after), 2.0) if retry_after.isdigit() else delay)
                continue
            raise SideChannelError(
                f"the gateway answered {status} to {kind} (attempt {attempt + 1}): {text[:300]}"
            )

    def _send(self, path: str, url: str, body: bytes) -> tuple[int, str, str]:
        """One POST: the status, its Retry-After and its text."""
        if self.session is not None:
            response = self.session.post(url, data=body, timeout=self.timeout)
            return response.status_code, response.headers.get("Retry-After", ""), response.text
        reused = self.connection is not None
        try:
            return self._send_on_connection(path, body)
        except (ConnectionError, http.client.HTTPException):
            if not reused:
                raise
            # The gateway closed the kept connection while it was idle (its keep-alive
            # timeout), before reading this POST: once more on a new one.
            return self._send_on_connection(path, body)

    def _send_on_connection(self, path: str, body: bytes) -> tuple[int, str, str]:
        if self.connection is None:
            connection = self._connect()
            try:
                connection.connect()
            except OSError as exc:  # refused, unreachable, no answer, TLS refused: not sent
                connection.close()
                raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
            self.connection = connection
        try:
            self.connection.request("POST", path, body=body, headers=self.headers)
            response = self.connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        except BaseException:
            self._disconnect()
            raise
        if response.will_close:
            self._disconnect()
        return response.status, response.getheader("Retry-After", ""), text

    def _connect(self) -> http.client.HTTPConnection:
        if self.protocol == "http":
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        context = ssl.create_default_context(
            cafile=self.verify if isinstance(self.verify, str) else None
        )
        if self.verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(
            self.host, self.port, timeout=self.timeout, context=context
        )

    def _disconnect(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _maybe_taken(error: BaseException) -> bool:
    """A POST that failed after it was sent: no answer in time (a connect that timed out, which
    requests reports as both kinds, was never sent)."""
    if isinstance(error, requests.ConnectionError):
        return False
    return isinstance(error, (TimeoutError, requests.Timeout))


def _proxied(url: str) -> bool:
    """Whether the environment's proxy settings (HTTPS_PROXY, NO_PROXY, ...) route `url`
    through a proxy, as requests reads them."""
    return bool(requests.utils.get_environ_proxies(url))


# Most bytes taken from the socket at once while relaying a stream.
READ_BYTES = 64 * 1024


def arrivals(response: requests.Response) -> Iterator[bytes]:
    """The body's bytes as the server sends them, whatever its framing."""
    raw = response.raw
    if getattr(raw, "chunked", False):
        # chunk_size=None hands over each chunk as the server flushes it.
        yield from response.iter_content(chunk_size=None)
        return
    # A body without Content-Length or chunking ends when the server closes: iter_content would
    # read it to its end before handing anything over. read1 returns what one read from the
    # socket gives (urllib3 2.3+; older ones: the http.client response underneath, which is
    # not decoded, hence the `identity` encoding asked for streams).
    read1 = getattr(raw, "read1", None) or raw._fp.read1
    while True:
        chunk = read1(READ_BYTES)
        if not chunk:
            return
        yield chunk


def sse_lines(response: requests.Response) -> Iterator[str]:
    """The response's non-empty lines as they arrive, the last one even without a newline."""
    pending = b""
    for chunk in arrivals(response):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            text = line.rstrip(b"\r").decode("utf-8", "replace")
            if text.strip():
                yield text
    tail = pending.rstrip(b"\r").decode("utf-8", "replace")
    if tail.strip():
        yield tail


class Batcher:
    """Groups streamed lines into side-channel POSTs: the first line alone (the first token
    shows at once), then what arrives within BATCH_SECONDS of the last POST, bounded in lines
    and bytes. A line held back waits at most BATCH_SECONDS, even when the model pauses before
    its next one: a thread of the stream's own sends what is due (started at the first line
    held). One lock orders every POST, so the kept connection is used by one thread at a time;
    a failure of the thread's POST is raised by the next add or finish.
    """

    def __init__(self, channel: SideChannel) -> None:
        self.channel = channel
        self.lines: list[str] = []
        self.size = 0
        self.sent_lines = 0
        self.last_flush = 0.0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._sender: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._closing = False

    def add(self, line: str) -> None:
        with self._lock:
            self._raise_failure()
            self.lines.append(line)
            self.size += len(line)
            if (
                self.sent_lines == 0
                or len(self.lines) >= BATCH_LINES
                or self.size >= BATCH_BYTES
                or time.monotonic() - self.last_flush >= BATCH_SECONDS
            ):
                self._flush()
            elif len(self.lines) == 1:  # the first line held back: it has a deadline now
                self._start_sender()
                self._changed.notify()

    def finish(self) -> None:
        """Send what is held and stop the sender: the stream's last data is out."""
        with self._lock:
            self._raise_failure()
            self._flush()
        self.close()

    def close(self) -> None:
        """Stop the sender (what is still held is dropped: the stream has failed)."""
        with self._lock:
            self._closing = True
            self._changed.notify()
        if self._sender is not None:
            self._sender.join()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _start_sender(self) -> None:
        if self._sender is None:
            self._sender = threading.Thread(
                target=self._send_when_due, name="side-channel-batches", daemon=True
            )
            self._sender.start()

    def _send_when_due(self) -> None:
        with self._lock:
            while not self._closing:
                if not self.lines:
                    self._changed.wait()
                    continue
                remaining = self.last_flush + BATCH_SECONDS - time.monotonic()
                if remaining > 0:
                    self._changed.wait(remaining)
                    continue
                try:
                    self._flush()
                except BaseException as exc:  # the reader raises it at its next line
                    self._failure = exc
                    self.lines, self.size = [], 0
                    return

    def _flush(self) -> None:
        if not self.lines:
            return
        self._send(self.lines)
        self.sent_lines += len(self.lines)
        self.lines, self.size = [], 0
        self.last_flush = time.monotonic()

    def _send(self, lines: list[str]) -> None:
        try:
            self.channel.data("\n".join(lines))
        except PostTooLarge:
            # The gateway's limit is its own setting: send the batch in halves instead.
            if len(lines) == 1:
                raise
            half = len(lines) // 2
            self._send(lines[:half])
            self._send(lines[half:])


def _total_tokens(line: str, current: int) -> int:
    if '"usage"' not in line or not line.startswith("data:"):
        return current
    try:
        usage = json.loads(line[5:].strip()).get("usage") or {}
        return int(usage.get("total_tokens") or current)
    except (ValueError, AttributeError, TypeError):
        return current


def _stream(
    session: requests.Session,
    url: str,
    body: dict[str, Any],
    target: dict[str, Any],
    started: float,
) -> str:
    channel = SideChannel(target)
    status = "completed"
    tokens = 0
    batcher = Batcher(channel)
    try:
        try:
            response = session.post(
                url,
                json=body,
                stream=True,
                headers={"Accept-Encoding": "identity"},
                timeout=_timeouts("INFERENCE_STREAM_IDLE_TIMEOUT", 120.0),
            )
        except requests.RequestException as exc:
            _report(channel, f"Network error reaching the model server: {exc}")
            raise
        with response:
            if response.status_code >= 400:
                error = InferenceServerError(response.status_code, response.text)
                _report(channel, str(error))
                raise error
            try:
                for line in sse_lines(response):
                    if line.strip() == "data: [DONE]":
                        break
                    tokens = _total_tokens(line, tokens)
                    batcher.add(line)
                batcher.finish()
            except StreamClosed:
                # Leaving the `with` closes the connection, which stops the generation.
                status = "cancelled"
            except requests.RequestException as exc:
                batcher.finish()
                _report(channel, f"The model server's stream broke off: {exc}")
                raise
        if status == "completed":
            try:
                channel.done()
            except StreamClosed:
                status = "cancelled"
    finally:
        batcher.close()
        channel.close()
    elapsed = time.time() - started
    return json.dumps(
        {
            "streaming": True,
            "task_id": channel.task_id,
            "status": status,
            "total_chunks": batcher.sent_lines,
            "total_tokens": tokens,
            "response_time": elapsed,
            "throughput_tokens_per_second": tokens / elapsed if elapsed > 0 and tokens else 0,
        }
    )


def _report(channel: SideChannel, message: str) -> None:
    """Tell the gateway the stream failed; the task's own failure says it too if this fails."""
    with contextlib.suppress(SideChannelError):
        channel.error(message[:MAX_ERROR_TEXT])
