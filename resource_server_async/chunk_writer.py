"""A streamed answer's body chunks written by the server's protocol, past the ASGI send chain.

Every `http.response.body` message goes through each layer's send wrapper (Starlette's two error
layers, the edge's, the capture's, admission's) and uvicorn's `send`, though none does anything
with a body chunk that is not the last: for an open stream that is most of what relaying a chunk
costs the gateway itself (bench/stream_callgrind.py). The gateway's HTTP protocol
(inference_gateway/server.py) offers `scope["extensions"][EXTENSION]["chunk_writers"]`, whose
`chunk_writer(scope)` gives, for an answer started with chunked framing, a function that writes
one body chunk as uvicorn's `send` would (the framing; the wait while the client reads slower
than the answer is written; nothing once the client is gone). The start and the last message
still go through `send`, so every layer sees them.

A layer that must see an answer's body chunks (the capture, when it records answers) hides the
extension from what it calls (`hide`). Under another server the extension is absent and every
chunk goes through `send`. A leaf: imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

EXTENSION = "gateway.chunks"

# Writes one body chunk (more to follow); an awaitable to await before the next one when the
# client's connection is full, else None.
WriteChunk = Callable[[bytes], Awaitable[None] | None]


class ChunkWriters(Protocol):
    def chunk_writer(self, scope: MutableMapping[str, Any]) -> WriteChunk | None:
        """The writer of the body chunks of `scope`'s answer, once its start was sent; None
        when the protocol cannot write them itself (then `send` must)."""


def chunk_writer(scope: MutableMapping[str, Any]) -> WriteChunk | None:
    """The server's writer for this answer's body chunks, or None: send them through ASGI."""
    extension = (scope.get("extensions") or {}).get(EXTENSION)
    if extension is None:
        return None
    writers: ChunkWriters | None = extension.get("chunk_writers")
    return writers.chunk_writer(scope) if writers is not None else None


def hide(scope: MutableMapping[str, Any]) -> None:
    """Make every body chunk of this request's answer go through `send` (the layer calling
    this watches them): the request's own extensions, without this one."""
    extensions = scope.get("extensions")
    if extensions and EXTENSION in extensions:
        scope["extensions"] = {key: value for key, value in extensions.items() if key != EXTENSION}
