"""Incremental decoding of server-sent events whose bytes arrive split at arbitrary points."""

from __future__ import annotations

import re

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class SSEDecoder:
    """Feed raw bytes; get back the `data` of each complete event (multi-line data joined)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        events: list[bytes] = []
        while True:
            match = _EVENT_END.search(self._buffer)
            if match is None:
                return events
            raw, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            data = self._data_of(raw)
            if data is not None:
                events.append(data)

    def flush(self) -> list[bytes]:
        """The last event when the stream ended without its blank line."""
        raw, self._buffer = self._buffer, b""
        data = self._data_of(raw)
        return [] if data is None else [data]

    @staticmethod
    def _data_of(raw: bytes) -> bytes | None:
        lines = [
            line[5:].removeprefix(b" ") for line in raw.splitlines() if line.startswith(b"data:")
        ]
        return b"\n".join(lines) if lines else None
