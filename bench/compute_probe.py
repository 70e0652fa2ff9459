"""The relay probe: a Compute function that streams stamped chunks through the side channel.

Run by the Compute stand-in instead of the inference function for the streaming figures: each
chunk's content is `t=<wall-clock time at the start of its POST>`, so the caller measures the
side channel's relay alone (POST in, through the stream hub, out to the client), not the model.
The request's `max_tokens`, when given, sets the number of chunks (the bench compares 20 with
200 to find what one more relayed chunk costs).
"""

from __future__ import annotations

import json
import time
from typing import Any

from compute_functions.inference import STREAM_KEYS, SideChannel

CHUNKS = 20
GAP_SECONDS = 0.002  # between chunks, as a fast model's tokens come


def relay_probe(parameters: dict[str, Any]) -> str:
    body = dict(parameters["model_params"])
    channel = SideChannel({key: body.get(key) for key in STREAM_KEYS})
    chunks = int(body.get("max_tokens") or CHUNKS)
    started = time.time()
    try:
        for index in range(chunks):
            chunk = {
                "id": "probe",
                "object": "chat.completion.chunk",
                "created": int(started),
                "model": body.get("model", "probe-model"),
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": f"t={time.time():.6f}"},
                        "finish_reason": None,
                    }
                ],
            }
            channel.data("data: " + json.dumps(chunk))
            if index + 1 < chunks:
                time.sleep(GAP_SECONDS)
        # The final chunk and the terminator, as a model server ends a stream.
        final = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        channel.data("data: " + json.dumps(final) + "\ndata: [DONE]")
        channel.done()
    finally:
        channel.close()
    return json.dumps(
        {
            "streaming": True,
            "task_id": channel.task_id,
            "status": "completed",
            "total_chunks": chunks,
            "total_tokens": 0,
            "response_time": time.time() - started,
            "throughput_tokens_per_second": 0,
        }
    )
