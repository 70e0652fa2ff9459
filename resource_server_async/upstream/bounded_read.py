"""An HTTP answer's body read into memory, but never more than a limit of it.

The direct path (UPSTREAM_MAX_RESPONSE_BYTES) and the Compute service's answers
(COMPUTE_MAX_ANSWER_BYTES) both hold a whole answer; a server that sends more than the limit
has its connection dropped instead of the rest read.
"""

from __future__ import annotations

import aiohttp


async def read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, or None (the connection closed) when it is longer than `limit` bytes: a
    declared length over it is refused before reading, an undeclared one after at most `limit`
    bytes and the read that crossed it."""
    declared = response.content_length
    if declared is not None:
        if declared > limit:
            response.close()
            return None
        return await response.read()  # aiohttp reads no more than the declared length
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            response.close()
            return None
        chunks.append(chunk)
    return b"".join(chunks)
