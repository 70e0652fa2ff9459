"""Admission's releases, bundled: the script calls whose answer nobody waits for (a finished
request's limits and allocation corrections) go to Redis as one script per turn of the event
loop, whatever the number of requests that ended in it.

Why: a release needs no reply, yet as a call of its own it costs a future, a place in the pipe's
queue and a reply to parse, for every request and every check it passed. Bundled, a turn's
releases cost one call. They go out in the flush of the same turn, ahead of that turn's other
calls (a release only ever makes room, so it may overtake them), so any later call of this
process, such as a client's next request's, meets them applied, and a call of another worker
as soon as it reaches Redis after them. The bundle runs each release under `pcall`: one
failing release does not stop the rest.
"""

from __future__ import annotations

import asyncio
from typing import Any

from resource_server_async.admission.redis_pipe import RedisUnavailable, Script, ScriptPipe
from resource_server_async.admission.resp import Packed, packed_value
from resource_server_async.admission.ticket import warn_rarely

# ARGV: the number of releases, then per release its script's index, key count and argument
# count, then every release's arguments in order; KEYS: every release's keys in order. Returns
# how many releases failed and the first failure's message.
_RUN_RELEASES = """
local n = tonumber(ARGV[1])
local k, a = 0, 1 + 3 * n
local failed, first = 0, ''
for c = 0, n - 1 do
  local release = RELEASES[tonumber(ARGV[2 + 3 * c])]
  local nk, na = tonumber(ARGV[3 + 3 * c]), tonumber(ARGV[4 + 3 * c])
  local keys, args = {}, {}
  for i = 1, nk do keys[i] = KEYS[k + i] end
  for i = 1, na do args[i] = ARGV[a + i] end
  k, a = k + nk, a + na
  local ok, err = pcall(release, keys, args)
  if not ok then
    if failed == 0 then first = tostring(err) end
    failed = failed + 1
  end
end
return {failed, first}
"""


def bundle_source(releases: list[Script]) -> str:
    """The bundle script: each release script as a function of its own KEYS and ARGV."""
    functions = ",\n".join(f"function(KEYS, ARGV)\n{script.text}\nend" for script in releases)
    return f"local RELEASES = {{\n{functions}\n}}\n{_RUN_RELEASES}"


class Outbox:
    """The releases of this turn of the loop, written with the pipe's next flush."""

    def __init__(self, pipe: ScriptPipe, *, max_pending: int) -> None:
        self._pipe = pipe
        self._max_pending = max_pending
        self._releases: list[Script] = []
        self._index: dict[str, int] = {}  # a release script's SHA-1 -> its 1-based index
        self._bundle: Script | None = None
        # This turn's releases: their keys and arguments packed (resp.py) as they are posted.
        self._keys: list[bytes] = []
        self._header: list[Any] = []
        self._args: list[bytes] = []
        self._key_count = 0
        self._arg_count = 0
        self.failed = 0  # releases Redis did not apply (lost with a connection, or refused)
        pipe.before_flush(self._hand_over)

    def register(self, script: Script) -> None:
        """Make `script` postable (a release: its reply is not needed)."""
        if script.sha not in self._index:
            self._releases.append(script)
            self._index[script.sha] = len(self._releases)
            self._bundle = None

    def post(
        self, script: Script, key_count: int, keys: bytes, arg_count: int, args: bytes
    ) -> None:
        """Queue a release for this turn's flush, its keys and arguments packed (resp.py)
        (RedisUnavailable: too many already queued)."""
        count = len(self._header) // 3
        if count >= self._max_pending:
            self.failed += 1
            raise RedisUnavailable(f"{self._max_pending} releases already wait for Redis")
        self._header += (self._index[script.sha], key_count, arg_count)
        self._keys.append(keys)
        self._args.append(args)
        self._key_count += key_count
        self._arg_count += arg_count
        if count == 0:
            self._pipe.want_flush()

    def _hand_over(self) -> None:
        """At the pipe's flush: this turn's releases become one call."""
        if not self._header:
            return
        count = len(self._header) // 3
        header = [count, *self._header]
        data = b"".join(
            (
                packed_value(self._key_count),
                *self._keys,
                *map(packed_value, header),
                *self._args,
            )
        )
        packed = Packed(1 + self._key_count + len(header) + self._arg_count, data)
        self._keys, self._header, self._args = [], [], []
        self._key_count = self._arg_count = 0
        if self._bundle is None:
            self._bundle = Script(bundle_source(self._releases))
        sent: asyncio.Future[Any] = self._pipe.call(self._bundle, (), packed, first=True)
        sent.add_done_callback(lambda done: self._answered(done, count))

    def _answered(self, done: asyncio.Future[Any], count: int) -> None:
        if done.cancelled():
            return
        exc = done.exception()
        if exc is not None:
            self.failed += count
            _warn(f"{count} releases were lost ({exc}); their slots wait for their lease")
            return
        failed, first = done.result()
        if int(failed):
            self.failed += int(failed)
            reason = first.decode(errors="replace") if isinstance(first, bytes) else first
            _warn(f"Redis refused {int(failed)} of {count} releases: {reason}")


def _warn(message: str) -> None:
    warn_rarely(f"admission: {message}")
