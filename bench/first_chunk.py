"""Time to first streamed chunk, measured on one keep-alive connection with raw asyncio sockets.

wrk measures whole responses only; this driver sends the same streaming request N times in a
row and records when the first `data:` line arrives and when the response ends. It does almost
no work per byte, so it measures the server, not itself.
"""

from __future__ import annotations

import asyncio
import statistics
import time

_END = b"\r\n0\r\n\r\n"  # last chunk of a chunked HTTP/1.1 response


def request_bytes(host: str, port: int, path: str, body: bytes, auth: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nAccept: text/event-stream\r\n"
    )
    if auth:
        head += f"Authorization: {auth}\r\n"
    return head.encode() + b"\r\n" + body


async def _measure(host: str, port: int, raw: bytes, count: int) -> tuple[list[float], list[float]]:
    reader, writer = await asyncio.open_connection(host, port)
    first: list[float] = []
    total: list[float] = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(raw)
            buffer = b""
            seen_first = False
            while not buffer.endswith(_END):
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection mid-response")
                buffer += chunk
                if not seen_first and b"data:" in buffer:
                    first.append(time.perf_counter() - started)
                    seen_first = True
            total.append(time.perf_counter() - started)
            if not buffer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer: {buffer[:200]!r}")
    finally:
        writer.close()
    return first, total


def measure(
    host: str, port: int, path: str, body: bytes, auth: str, count: int
) -> dict[str, float]:
    """Median and p99 (ms) of time to first chunk and to the end of the stream."""
    raw = request_bytes(host, port, path, body, auth)
    asyncio.run(_measure(host, port, raw, min(20, count)))  # warm up
    first, total = asyncio.run(_measure(host, port, raw, count))
    first.sort()
    total.sort()
    return {
        "first_p50_ms": statistics.median(first) * 1000,
        "first_p99_ms": first[int(len(first) * 0.99) - 1] * 1000,
        "total_p50_ms": statistics.median(total) * 1000,
    }
