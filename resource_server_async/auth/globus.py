"""Globus Auth access tokens: introspection, session, policy and group checks, cached."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

from resource_server_async.auth import globus_api
from resource_server_async.auth.globus_rules import (
    AuthRules,
    check_groups,
    check_token,
    identify,
    with_groups,
)
from resource_server_async.auth.principal import Principal
from resource_server_async.auth.principal_cache import Outcome, PrincipalCache, token_digest
from resource_server_async.errors import GatewayError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A denial is remembered briefly: long enough to shield Globus from a client retrying a bad
# token in a loop, short enough that a user who fixes their session is not kept out.
DENIAL_CACHE_SECONDS = 30.0


def _unavailable(reason: str) -> GatewayError:
    logger.warning("globus: token validation unavailable: %s", reason)
    return GatewayError(
        503,
        "globus_unavailable",
        "Globus Auth could not be reached to validate the access token. This is not a problem "
        "with your token; retry in a moment.",
    )


def _copy(error: GatewayError) -> GatewayError:
    # A cached denial is raised by many requests at once; each gets its own exception object.
    return GatewayError(
        error.status,
        error.code,
        error.message,
        headers=dict(error.headers),
        extra=dict(error.extra),
    )


class GlobusTokenValidator:
    """Validates Globus access tokens; concurrent requests with one token share one validation.

    Built by the runtime when GLOBUS_APPLICATION_ID is set, so importing the SDK happens at
    start-up; its semaphore and in-flight futures serve the runtime's event loop.
    """

    def __init__(self) -> None:
        self.cache = PrincipalCache(redis_url=settings.REDIS_URL)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.GLOBUS_INTROSPECT_CONCURRENCY, thread_name_prefix="globus-auth"
        )
        self._semaphore = asyncio.Semaphore(settings.GLOBUS_INTROSPECT_CONCURRENCY)
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}
        # Personal API keys re-check their owner through this validator's pool.
        from resource_server_async.auth.key_owners import KeyOwnerChecks

        self.key_owners = KeyOwnerChecks(self, redis_url=settings.REDIS_URL)

    async def validate(self, token: str) -> Principal:
        digest = token_digest(token)
        outcome = await self.cache.get(digest)
        if outcome is None:
            outcome = await self._shared_validation(digest, token)
        if outcome.denial is not None:
            raise _copy(outcome.denial)
        assert outcome.principal is not None
        return outcome.principal

    async def _shared_validation(self, digest: str, token: str) -> Outcome:
        future = self._inflight.get(digest)
        if future is None:
            future = asyncio.ensure_future(self._validate_remotely(digest, token))
            self._inflight[digest] = future

            def forget(done: asyncio.Future[Outcome]) -> None:
                self._inflight.pop(digest, None)
                # Marks a failure as seen even when every waiter went away (disconnects), so
                # asyncio does not log it as never retrieved.
                if not done.cancelled():
                    done.exception()

            future.add_done_callback(forget)
        # One caller giving up (client disconnect) must not cancel the others' validation.
        return await asyncio.shield(future)

    async def _validate_remotely(self, digest: str, token: str) -> Outcome:
        rules = AuthRules.from_settings()
        conf = globus_api.GlobusSettings(
            client_id=settings.GLOBUS_APPLICATION_ID,
            client_secret=settings.GLOBUS_APPLICATION_SECRET,
            http_timeout=settings.GLOBUS_INTROSPECT_TIMEOUT,
            policies=rules.policies,
        )
        now = time.time()
        try:
            async with asyncio.timeout(settings.GLOBUS_INTROSPECT_TIMEOUT):
                data = await self._in_thread(globus_api.introspect, conf, token)
                expires_at = check_token(data, rules, now)
                identity = identify(data, rules)
                groups = await self._in_thread(globus_api.my_group_ids, conf, token)
            principal = with_groups(identity, groups)
            check_groups(principal, rules)
        except globus_api.GlobusOutage as exc:
            raise _unavailable(str(exc)) from None
        except TimeoutError:
            raise _unavailable(
                f"no answer within GLOBUS_INTROSPECT_TIMEOUT={settings.GLOBUS_INTROSPECT_TIMEOUT}s"
            ) from None
        except GatewayError as error:
            if error.status not in (401, 403):
                # The gateway's own misconfiguration: logged, and never remembered as a denial.
                logger.error("globus: %s", error.message)
                raise
            until = now + min(DENIAL_CACHE_SECONDS, settings.AUTH_CACHE_MAX_SECONDS)
            denied = Outcome(until=until, denial=error)
            await self.cache.put(digest, denied)
            return denied
        accepted = Outcome(
            until=min(expires_at, now + settings.AUTH_CACHE_MAX_SECONDS), principal=principal
        )
        await self.cache.put(digest, accepted)
        return accepted

    async def in_thread(self, call: Callable[..., T], *args: Any) -> T:
        """A blocking Globus call in this validator's bounded pool (personal keys use it)."""
        return await self._in_thread(call, *args)

    async def _in_thread(self, call: Callable[..., T], *args: Any) -> T:
        """Run a blocking SDK call in the Globus pool, at most GLOBUS_INTROSPECT_CONCURRENCY."""
        loop = asyncio.get_running_loop()
        semaphore = self._semaphore
        await semaphore.acquire()
        work = self._pool.submit(call, *args)

        def release(_: concurrent.futures.Future[T]) -> None:
            # Released when the thread is done, not when the caller stops waiting: a call that
            # outlived its deadline still occupies a thread and must still count.
            # RuntimeError: the loop is closed (shutdown) and nothing waits on it any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(semaphore.release)

        work.add_done_callback(release)
        return await asyncio.wrap_future(work)

    def clear(self) -> None:
        """Forget validated principals held by this process (tests, operator reload)."""
        self.cache.clear_local()

    async def aclose(self) -> None:
        await self.cache.aclose()
        await self.key_owners.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)
