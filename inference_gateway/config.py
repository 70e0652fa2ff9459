"""Every setting declared once (type, default, bounds, meaning) and checked at start.

The gateway reads its settings from the environment (CONTRACT.md §6 names) through one
pydantic-settings model, so that a wrong value stops the process when Django loads its
settings (manage.py, the ASGI app, the batch worker) with a message naming the variable,
instead of failing on the first request that needs it. To add a setting: declare it in
`GatewaySettings` with its type and a docstring (docs/settings.md lists them), then read it in
inference_gateway/settings.py. Cross-setting rules live in `_check_together`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import TypedDict

from inference_gateway.env import ConfigurationError, secret_weakness

_LIST_SEPARATORS = re.compile(r"[\s;,]+")


def _split_list(raw: Any) -> Any:
    """CONTRACT.md §6 list syntax: whitespace, `;` or `,` separated, or a JSON list."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"starts with '[' but is not a JSON list ({exc})") from None
        if not isinstance(value, list):
            raise ValueError("is not a JSON list")
        return [str(item).strip() for item in value if str(item).strip()]
    return [item for item in _LIST_SEPARATORS.split(text) if item]


def _json_text(raw: Any) -> Any:
    """A JSON value from its text (the environment holds only strings)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc})") from None


def _networks(items: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return networks


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    """A URL check: empty (unset) or one of `schemes` with a host or a path."""

    def check(value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(f"must be a URL starting with one of {', '.join(schemes)}")
        if not (parts.netloc or parts.path.strip("/")):
            raise ValueError("names no host or path")
        return value

    return check


class Shape(str):
    """What a JSON setting must look like, added to its error message."""


StrList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]
Networks = Annotated[
    list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    NoDecode,
    BeforeValidator(lambda raw: _networks(_split_list(raw))),
]
JsonStrList = Annotated[
    list[str], NoDecode, BeforeValidator(_json_text), Shape("a JSON list of strings")
]
# JSON objects of the catalog-facing settings: {"key": value shape}.
StrMap = Annotated[
    dict[str, str], NoDecode, BeforeValidator(_json_text), Shape('a JSON object {"key": "string"}')
]
GroupsMap = Annotated[
    dict[str, str | list[str]],
    NoDecode,
    BeforeValidator(_json_text),
    Shape('a JSON object {"domain": groups as a string or a list of strings}'),
]
PathsMap = Annotated[
    dict[str, list[Annotated[str, Field(min_length=1)]]],
    NoDecode,
    BeforeValidator(_json_text),
    Shape('a JSON object {"cluster": ["/path/one", "/path/two"]}'),
]
NonEmpty = Annotated[str, Field(min_length=1)]


class Credentials(TypedDict):
    client_id: NonEmpty
    client_secret: NonEmpty


CredentialsMap = Annotated[
    dict[str, Credentials],
    NoDecode,
    BeforeValidator(_json_text),
    Shape('a JSON object {"<endpoint uuid>": {"client_id": "...", "client_secret": "..."}}'),
]
Port = Annotated[int, Field(ge=1, le=65535)]
Lowercase = BeforeValidator(lambda raw: raw.lower() if isinstance(raw, str) else raw)
Uppercase = BeforeValidator(lambda raw: raw.upper() if isinstance(raw, str) else raw)
DatabaseUrl = Annotated[
    str,
    AfterValidator(
        _url(("postgres", "postgresql", "pgsql", "postgis", "sqlite", "mysql", "oracle"))
    ),
]
RedisUrl = Annotated[str, AfterValidator(_url(("redis", "rediss", "unix")))]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], Uppercase]

# Settings whose values never appear in an error message.
_SECRETS = frozenset(
    {
        "SECRET_KEY",
        "INTERNAL_STREAMING_SECRET",
        "GLOBUS_APPLICATION_SECRET",
        "SERVICE_ACCOUNT_SECRET",
        "GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES",
        "METRICS_TOKEN",
        "DATABASE_URL",
        "REDIS_URL",
    }
)


class GatewaySettings(BaseSettings):
    """The gateway's settings, one attribute per environment variable of the same name."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,  # VAR= in an .env file means "the default", as it always did
        str_strip_whitespace=True,
        use_attribute_docstrings=True,
        extra="ignore",
        frozen=True,
    )

    # --- Core ---------------------------------------------------------------------------------
    GATEWAY_DEV_MODE: bool = False
    """Development mode: insecure defaults (secret key, streaming secret), plain-text logs,
    DEBUG allowed. Never in production."""
    DEBUG: bool = False
    """Django's debug pages (settings and tracebacks to anyone); refused outside development mode.
"""
    GATEWAY_DATA_DIR: str = ""
    """Directory of the SQLite database, spool files, metrics and batch files (default: var/)."""
    SECRET_KEY: str = ""
    """Signs sessions and the side channel's task tokens. Required outside development mode, at
    least 32 characters and 80 bits of entropy."""
    ALLOWED_HOSTS: StrList = ["localhost", "127.0.0.1", "[::1]"]
    """Host names this gateway answers for (list)."""
    CSRF_TRUSTED_ORIGINS: StrList = []
    """Origins (https://host) trusted for the admin's forms behind a TLS proxy (list)."""
    SECURE_COOKIES: bool | None = None
    """Admin session and CSRF cookies only over HTTPS (default: on outside development mode)."""
    ADMIN_LOGIN_MAX_FAILURES: PositiveInt = 5
    """Failed admin sign-ins allowed from one address before it is locked out."""
    ADMIN_LOGIN_LOCKOUT_SECONDS: PositiveInt = 900
    """The window (s) after which an address's failed sign-ins count restarts."""

    # --- Data -------------------------------------------------------------------------------------
    DATABASE_URL: DatabaseUrl = ""
    """The database (postgres://user@host:5432/name); default: SQLite in GATEWAY_DATA_DIR."""
    DB_CONN_MAX_AGE: NonNegativeInt = 60
    """Seconds a PostgreSQL connection is reused (0: one per request)."""
    REDIS_URL: RedisUrl = ""
    """Redis (redis://host:6379/0): shared limits, streams and caches across workers and hosts."""
    CACHE_KEY_PREFIX: str = "gateway"
    """Prefix of Django's cache keys in Redis."""
    GATEWAY_WORKERS: PositiveInt | None = None
    """Worker processes serving this database on all hosts together (the deploy files set it);
    unset: read from WEB_CONCURRENCY or the server's --workers. More than one needs REDIS_URL
    when Globus Compute streaming is configured."""

    # --- Logging ----------------------------------------------------------------------------------
    LOG_LEVEL: LogLevel = "INFO"
    """Lowest level logged (DEBUG, INFO, WARNING, ERROR, CRITICAL)."""
    LOG_FORMAT: Annotated[Literal["json", "text"], Lowercase] | None = None
    """json: one JSON object per line on stdout; text: plain lines (default: text in
    development mode, json otherwise)."""
    REQUEST_LOG: bool = True
    """One log line per API request (id, principal, route, cluster, model, status, timings)."""
    REQUEST_LOG_QUEUE: PositiveInt = 10_000
    """Request log lines waiting to be written, per process; beyond, lines are dropped (and
    the drop is logged)."""
    REQUEST_LOG_INTERVAL: PositiveFloat = 0.2
    """Seconds the request log lines gather before they are written (a thread, off the request
    path; with no line waiting it sleeps)."""

    # --- API --------------------------------------------------------------------------------------
    GATEWAY_DRAIN_SECONDS: PositiveFloat = 30.0
    """On SIGTERM, how long (s) open streams may run on before they end with a final error
    event; run the server with a longer graceful-shutdown timeout (deploy/)."""
    GC_FREEZE_SECONDS: NonNegativeFloat = 0.2
    """How often (s) each worker collects its young objects and freezes the survivors out of
    the collector's full walks (resource_server_async/api/gc_policy.py), so that thousands of
    open streams do not make every full collection a pause of seconds; 0: only the objects of
    start-up are frozen, and CPython's own thresholds decide the rest."""
    GC_THAW_GROWTH: Annotated[float, Field(gt=1.0)] = 2.0
    """When the Python heap (its allocated blocks, measured at most once a second: the measure
    walks every pymalloc pool) has grown to this many times its size after the last thaw, the
    worker unfreezes its objects and runs one full collection (a pause that walks everything),
    so that cycles left by closed streams are freed: frozen garbage stays below (growth - 1)
    times the heap then. Used only when GC_FREEZE_SECONDS is above 0."""
    MAX_REQUEST_BODY_BYTES: PositiveInt = 20 * 1024 * 1024
    """Largest request body the API reads (bytes); larger bodies answer 413."""
    MAX_JSON_DEPTH: PositiveInt = 64
    """Deepest nesting of arrays and objects in a JSON body; deeper answers 400 (orjson itself
    cannot re-encode more than 254 levels, so this must stay well below).
    """
    MAX_REQUEST_HEADER_BYTES: PositiveInt = 64 * 1024
    """Largest request line plus headers (bytes) a worker reads; larger answers 431. Enforced by
    the HTTP protocol of inference_gateway/server.py (uvicorn --http ...), not by the app.
    """
    CATALOG_REFRESH_SECONDS: PositiveFloat = 1.0
    """How often (s) each worker checks whether clusters or endpoints changed in the database."""

    # --- Model servers (direct API endpoints) -----------------------------------------------------
    UPSTREAM_CONNECT_TIMEOUT: PositiveFloat = 10.0
    """Seconds to open a TCP connection to a model server (the whole call uses
    api_request_timeout).
    """
    UPSTREAM_MAX_CONNECTIONS: PositiveInt = 256
    """Open connections kept per model server (one pool per server, shared by all its endpoints)."""
    UPSTREAM_POOL_WAIT_SECONDS: PositiveFloat = 10.0
    """Seconds a call waits for a free pooled connection once all are in use (then 503
    upstream_busy with Retry-After); never longer than the endpoint's api_request_timeout.
    """
    UPSTREAM_MAX_RESPONSE_BYTES: PositiveInt = 64 * 1024 * 1024
    """Largest non-streaming answer read from a model server (bytes); larger ones answer 502
    upstream_response_too_large without being read whole.
    """
    UPSTREAM_KEEPALIVE_SECONDS: PositiveFloat = 30.0
    """Seconds an idle pooled connection to a model server stays open."""
    MODEL_STATUS_CACHE_SECONDS: NonNegativeFloat = 5.0
    """Seconds a cluster's model status page (Metis status_url) is reused before it is fetched
    again.
    """
    MODEL_STATUS_STALE_SECONDS: NonNegativeFloat = 60.0
    """Seconds an expired status page reading may still answer while one fetch replaces it (and
    while the page fails); past that, requests wait for a fresh read.
    """
    ROUTING_CIRCUIT_FAILURES: PositiveInt = 3
    """Federated routing (inference/routing.py): failed calls in a row (unreachable, not live, timed
    out, ...) that open an endpoint's circuit (endpoints/circuit.py), which ranks it last for
    ROUTING_CIRCUIT_COOLDOWN_SECONDS."""
    ROUTING_CIRCUIT_COOLDOWN_SECONDS: NonNegativeFloat = 15.0
    """How long (s) an open circuit ranks its endpoint last; then one request probes it: a success
    closes the circuit, a failure opens it again. 0: a failing endpoint is never ranked last."""
    ROUTING_FAILOVER_SECONDS: PositiveFloat = 30.0
    """How long (s) after its first try a federated request may still move on to the next candidate
    when a call fails before any model server received it; past it, that failure is the answer."""
    ROUTING_SHARE_SECONDS: PositiveFloat = 0.5
    """With REDIS_URL: how often (s) each worker publishes its in-flight counts and newly opened or
    closed circuits, and reads the other workers' (a background task: no request waits on Redis for
    routing). Circuits are shared by the workers of one host."""
    ROUTING_REDIS_PREFIX: str = "igw:routing:"
    """Prefix of federated routing's Redis keys (each worker's in-flight counts, each host's open
    circuits); two gateways sharing one Redis keep apart by it."""
    VLLM_CACHE_SALT: bool = False
    """vLLM's prefix cache salted per principal (`cache_salt` added to chat/completions and
    completions bodies sent to vllm endpoints), so that one user's cached prefixes cannot speed
    up, and so reveal themselves to, another's requests. Costs a re-serialised body per request.
    """
    LIVE_STATE_SECONDS: NonNegativeFloat = 5.0
    """How often (s), at most, an endpoint's live state (clusters/live_state.py: what federated
    routing ranks by) is re-read in the background; a reading older than ten times this counts as
    "unknown". 0: no reading is reused, requests wait for a fresh one (up to LIVE_STATE_FIRST_WAIT).
    """
    LIVE_STATE_PROBE_TIMEOUT: PositiveFloat = 2.0
    """Seconds the live-state probe (GET /v1/models) of a direct server without a status page may
    take; a server that does not answer within it is "offline"."""
    LIVE_STATE_FIRST_WAIT: NonNegativeFloat = 1.0
    """Longest wait (s) of a federated request for candidates' live states never read (or older than
    ten times LIVE_STATE_SECONDS), so in practice only the first requests after start wait; states
    still unread rank "unknown". 0: no wait."""

    # --- Authentication (CONTRACT.md §6 names) ----------------------------------------------------
    GLOBUS_APPLICATION_ID: str = ""
    """The gateway's Globus confidential client (resource server), for token introspection."""
    GLOBUS_APPLICATION_SECRET: str = ""
    """The secret of GLOBUS_APPLICATION_ID (required when it is set)."""
    AUTHORIZED_IDP_DOMAINS: StrList = []
    """Identity-provider domains allowed to sign in (list; empty: any)."""
    AUTHORIZED_GROUPS_PER_IDP: GroupsMap = {}
    """JSON {"domain": "group1,group2"} or {"domain": ["group1", ...]}: extra group requirement
    for users of that domain."""
    GLOBUS_GROUPS: StrList = []
    """Globus group ids; when set, a user must be in at least one (list)."""
    GLOBUS_POLICIES: StrList = []
    """Globus Auth policy ids evaluated at introspection (list)."""
    AUTHORIZED_GLOBUS_SERVICE_USERNAMES: JsonStrList = []
    """JSON list of service-account usernames allowed without session checks."""
    AUTH_CACHE_MAX_SECONDS: NonNegativeInt = 300
    """Upper bound (s) on how long a validated Globus token is trusted without asking Globus again
    (never past the token's expiry; a denial is kept 30 s at most). 0: each request asks Globus."""
    GLOBUS_INTROSPECT_TIMEOUT: PositiveFloat = 10.0
    """Seconds one Globus token validation (introspection and group lookup, and each HTTP call in
    it), or one personal key's owner re-check, may take; past it the request answers 503
    globus_unavailable."""
    GLOBUS_INTROSPECT_CONCURRENCY: PositiveInt = 8
    """Threads per worker for the synchronous Globus Auth and Groups calls (token validations,
    personal keys' owner re-checks); more calls wait for a free thread."""
    API_KEY_CACHE_SECONDS: NonNegativeInt = 30
    """How long (s) a validated gateway API key is trusted before the database is asked again; a
    revoked key stops working within this time.
    """
    API_KEY_ACCEPT_LEGACY: bool = True
    """Accept keys issued before keys carried a checksum (they reach the database when unknown);
    turn off once `list_api_keys` shows no active legacy key.
    """
    API_KEY_NEGATIVE_CACHE_SECONDS: NonNegativeFloat = 5.0
    """How long (s) the hash of an unknown, revoked or expired API key is remembered, so that a
    repeated guess is refused without the database. 0: not remembered."""
    API_KEY_NEGATIVE_CACHE_SIZE: PositiveInt = 10_000
    """Unknown key hashes remembered per worker, in an LRU apart from the valid keys' cache (so that
    guesses cannot push real keys out); the least recently used go first."""
    API_KEY_MAX_PENDING_LOOKUPS: PositiveInt = 256
    """Distinct uncached keys waiting for the database per worker; beyond it, 503 with Retry-After.
"""
    PERSONAL_KEY_MAX_DAYS: PositiveInt = 90
    """Personal keys (POST /resource_server/v1/keys, docs/auth.md): the longest expiry (days) a
    researcher may ask for; a key created without `expires` lives 30 days, or this if shorter."""
    PERSONAL_KEYS_PER_OWNER: PositiveInt = 10
    """Personal keys one owner may hold active at once; creating one more answers 409 too_many_keys.
    """
    PERSONAL_KEY_RECHECK_SECONDS: NonNegativeInt = 300
    """How often (s), at most, a personal key owner's groups are re-read from Globus and the group
    and IdP rules applied again, so that a key stops working within this time once its owner no
    longer passes them. 0: on every request."""
    GLOBUS_CLI_CLIENT_ID: str = ""
    """What `igw login` asks the gateway for (GET /resource_server/v1/auth/config): the Globus
    native-app client id the command logs in with (registered by the operator, a "thick
    client").
    """

    # --- Globus Compute ---------------------------------------------------------------------------
    SERVICE_ACCOUNT_ID: str = ""
    """The service identity (Globus client id) that submits Globus Compute tasks."""
    SERVICE_ACCOUNT_SECRET: str = ""
    """The secret of SERVICE_ACCOUNT_ID (required when it is set)."""
    GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES: CredentialsMap = {}
    """JSON {"<endpoint uuid>": {"client_id": "...", "client_secret": "..."}}: another identity
    for that endpoint's tasks."""
    COMPUTE_EXECUTOR: Annotated[Literal["globus", "local"], Lowercase] = "globus"
    """"globus" submits to Globus Compute; "local" runs the same functions on this machine."""
    LOCAL_COMPUTE_FUNCTIONS: StrMap = {}
    """COMPUTE_EXECUTOR=local: JSON {"<function uuid>": "dotted.path.to.function"}."""
    COMPUTE_RESULT_TIMEOUT: PositiveFloat = 300.0
    """Seconds a request to a Globus Compute endpoint (either executor) waits for its task, from
    submission to result; then 504 compute_timeout naming the task id. A stream's task waits at most
    STREAMING_MAX_SECONDS."""

    # --- Streaming side channel -------------------------------------------------------------------
    STREAMING_SERVER_HOST: str = "127.0.0.1"
    """Host where cluster-side functions reach the streaming side channel."""
    STREAMING_SERVER_PORT: Port = 8000
    """Port of the side channel (1-65535)."""
    STREAMING_SERVER_PROTOCOL: Annotated[Literal["http", "https"], Lowercase] = "https"
    """Scheme of the side channel (http or https)."""
    INTERNAL_STREAMING_SECRET: str = ""
    """The side channel's shared secret. Outside development mode: required when Globus Compute
    streaming is configured, and as strong as SECRET_KEY must be."""

    # --- Compute executors, stream hub and /jobs --------------------------------------------------
    COMPUTE_POLL_INTERVAL: PositiveFloat = 0.5
    """How often (s) the results of pending Globus Compute tasks are asked for (one call for all).
"""
    COMPUTE_STATUS_CACHE_SECONDS: NonNegativeFloat = 10.0
    """How long (s) an endpoint's status from the Compute service is reused before a background
    refresh; after 10x this long without a refresh, a request waits for a fresh answer.
    """
    COMPUTE_SERVICE_TIMEOUT: PositiveFloat = 30.0
    """Timeout (s) of one call to the Globus Compute web service (submit, status, results)."""
    COMPUTE_SERVICE_CONNECTIONS: PositiveInt = 8
    """Connections each Globus Compute identity keeps to the Compute service for submissions and
    result polls (one call at a time per endpoint, and one poll).
    """
    COMPUTE_MAX_ANSWER_BYTES: PositiveInt = 64 * 1024 * 1024
    """Longest answer (bytes) read from the Compute service: a result poll over it is asked for
    again in halves, and a task whose result alone is longer fails with 502
    compute_result_too_large (the service's own results are at most 10 MB by default)."""
    COMPUTE_SDK_THREADS: PositiveInt = 8
    """Threads per worker for the Globus Compute SDK's synchronous calls: sign-in, token renewal
    near its expiry, endpoint status (submissions and result polls go out on the event loop, not
    through them)."""
    COMPUTE_SDK_THREADS_PER_ENDPOINT: PositiveInt = 2
    """Of the COMPUTE_SDK_THREADS, how many one endpoint's calls (its status reads) may hold at
    once, so that a slow or hung endpoint leaves the rest to the others."""
    COMPUTE_SUBMIT_QUEUE: PositiveInt = 1000
    """Tasks that may wait to be submitted to one Globus Compute endpoint, per worker (each endpoint
    has its own submitter: one call at a time, what waits goes out in batches); beyond, 503
    endpoint_unavailable."""
    COMPUTE_STARTING_RETRY_AFTER: PositiveInt = 60
    """Retry-After (s) answered while a model's batch job starts (endpoint online, no workers)."""
    COMPUTE_WAKE_INTERVAL: PositiveFloat = 600.0
    """At most one wake-up probe per endpoint in this many seconds (it makes the endpoint scale
    up).
    """
    LOCAL_COMPUTE_WORKERS: PositiveInt = 8
    """COMPUTE_EXECUTOR=local: threads that run the functions on this machine, per worker process
    (tasks running at once)."""
    LOCAL_COMPUTE_QUEUE: PositiveInt = 64
    """COMPUTE_EXECUTOR=local: tasks that may wait for a free thread while all LOCAL_COMPUTE_WORKERS
    are busy; more answer 503 endpoint_unavailable."""
    STREAMING_FIRST_CHUNK_TIMEOUT: PositiveFloat = 300.0
    """Seconds a Globus Compute stream waits for its first chunk (its task may wait in the
    endpoint's queue, or for a node); then 504 stream_timeout."""
    STREAMING_IDLE_TIMEOUT: PositiveFloat = 120.0
    """Seconds a started Globus Compute stream waits for each next chunk; past it the stream ends
    with a final error event (stream_timeout)."""
    STREAMING_RESULT_WAIT_SECONDS: NonNegativeFloat = 10.0
    """After a compute stream ended, how long its task's result (the function's response_time and
    throughput, for the record) is awaited; the answer is not held. 0: not awaited.
    """
    STREAMING_MAX_SECONDS: PositiveInt = 3600
    """Longest life (s) of one stream; its task token expires then."""
    STREAMING_MAX_BODY_BYTES: PositiveInt = 1024 * 1024
    """Largest side-channel POST body (bytes) the gateway reads from a cluster-side function; larger
    answers 413."""
    STREAMING_BACKLOG: PositiveInt = 2000
    """Chunk posts one stream may hold for a slow client (posted, not yet read); beyond, a POST
    answers 503 stream_backlog_full with Retry-After, and the function sends it again."""
    STREAMING_BACKLOG_BYTES: PositiveInt = 4 * 1024 * 1024
    """Bytes of chunk text one stream may hold for a slow client, beside the STREAMING_BACKLOG
    posts; beyond, 503 stream_backlog_full (a post that finds the backlog empty is taken whatever
    its size)."""
    STREAMING_REDIS_READERS: PositiveInt = 500
    """With REDIS_URL: streams open at once per worker process, all read through its one
    subscribing Redis connection (each stream's channel); a stream request beyond answers 503
    stream_hub_busy. The chunks are published through one pipelined connection, which holds at
    most 4x this many calls waiting (a POST beyond answers 503 stream_hub_unavailable).
    """
    JOBS_CACHE_SECONDS: NonNegativeFloat = 60.0
    """/resource_server/{cluster}/jobs: seconds a Globus Compute cluster's job list (its status
    function's report) is reused for everyone; until five times that, a stale list answers while a
    newer one is read. 0: read for every request."""
    JOBS_FUNCTION_TIMEOUT: PositiveFloat = 60.0
    """Seconds a cluster's status function (qstat/squeue on its login node) may take; then the job
    list answers 504 jobs_timeout."""

    # --- Responses API ----------------------------------------------------------------------------
    RESPONSES_STORE: bool = False
    """Keep each translated Responses answer (its conversation and who made it) unless sent with
    store: false, so that its creator may continue it with previous_response_id (response_store.py);
    off (the default: stateless), such a request answers 400. With REDIS_URL in Redis, shared by all
    workers, else per worker process."""
    RESPONSES_STORE_MAX_ENTRIES: PositiveInt = 10000
    """Responses the store keeps; beyond, the oldest go first (in Redis the least recently stored,
    in a worker's memory the least recently used)."""
    RESPONSES_STORE_MAX_BYTES: PositiveInt = 1024 * 1024
    """Largest stored response (bytes of its encoded conversation); a larger one is not kept, and
    continuing it answers 404."""
    RESPONSES_STORE_TTL: PositiveInt = 3600
    """Seconds a stored response is kept from when it was stored (reading it does not extend it)."""

    # --- Operations -------------------------------------------------------------------------------
    MAINTENANCE_ERROR_NOTICES: StrMap = {}
    """JSON {"<cluster>": "<notice>"}: the cluster's requests answer 503 with the notice."""
    LEGACY_ENDPOINT_SLUG_MAPPING: StrMap = {}
    """JSON {"<old endpoint slug>": "<new endpoint slug>"}: requests for a renamed model (same
    cluster and framework) reach the new endpoint."""
    READY_CACHE_SECONDS: NonNegativeFloat = 1.0
    """GET /resource_server/ready: seconds each worker reuses its last check (one runs at a time),
    so that frequent probes cost the database one SELECT 1 per worker and period. 0: every probe
    checks."""
    READY_TIMEOUT_SECONDS: PositiveFloat = 2.0
    """GET /resource_server/ready: seconds each dependency (the database's SELECT 1, Redis's PING)
    may take before it counts as down (503)."""

    # --- Admission limits (docs/limits.md) --------------------------------------------------------
    LIMITS_WINDOW_SECONDS: PositiveFloat = 60.0
    """The period of the per-minute limits (rpm_*, tpm_*), in seconds: a full bucket refills in it.
"""
    LIMITS_DEFAULT_RPM_USER: NonNegativeInt = 0
    """Requests per LIMITS_WINDOW_SECONDS each principal may send to an endpoint whose rpm_user is 0
    (0 here = unlimited)."""
    LIMITS_DEFAULT_TPM_USER: NonNegativeInt = 0
    """Tokens (prompt + completion) per LIMITS_WINDOW_SECONDS each principal may use on an endpoint
    whose tpm_user is 0 (0 here = unlimited)."""
    LIMITS_DEFAULT_MAX_CONCURRENT_USER: NonNegativeInt = 0
    """Requests each principal may have in flight at once on an endpoint whose max_concurrent_user
    is 0 (0 here = unlimited)."""
    LIMITS_DEFAULT_RPM_MODEL: NonNegativeInt = 0
    """Requests per LIMITS_WINDOW_SECONDS from everyone together to an endpoint whose rpm_model is 0
    (0 here = unlimited)."""
    LIMITS_DEFAULT_TPM_MODEL: NonNegativeInt = 0
    """Tokens (prompt + completion) per LIMITS_WINDOW_SECONDS from everyone together on an endpoint
    whose tpm_model is 0 (0 here = unlimited)."""
    LIMITS_RESERVE_COMPLETION_TOKENS: PositiveInt = 1024
    """Completion tokens reserved for a request that names no max_tokens (corrected at its end)."""
    LIMITS_REDIS_FAILURE: Annotated[Literal["open", "closed"], Lowercase] = "open"
    """With REDIS_URL, what admission does when Redis does not answer a decision (limits,
    allocations, capacity): "open" admits without that check (a warning at most once a minute per
    worker), "closed" answers 503 (limits_unavailable, allocations_unavailable)."""
    LIMITS_REDIS_TIMEOUT: PositiveFloat = 0.5
    """Seconds admission waits for Redis to answer one decision; past it the decision follows
    LIMITS_REDIS_FAILURE, and Redis is not asked again for a second."""
    LIMITS_REDIS_MAX_PENDING: PositiveInt = 10_000
    """Admission's Redis calls waiting for their reply, per worker process (one pipelined
    connection); past it a decision fails at once, as when Redis is down (LIMITS_REDIS_FAILURE).
    """
    LIMITS_REDIS_PREFIX: str = "igw:limits:"
    """Prefix of the limiter's Redis keys (two gateways sharing one Redis keep apart by it)."""
    LIMITS_MEMORY_MAX_KEYS: PositiveInt = 100_000
    """Without Redis: limit states kept per process (least recently used forgotten first)."""
    LIMITS_SLOT_LEASE_SECONDS: PositiveInt = 3600
    """A concurrency slot whose request never released it (a worker that died) frees itself then."""
    ALLOCATIONS_RECONCILE_SECONDS: PositiveFloat = 60.0
    """Allocations: seconds between rebuilds of what each allocation spent from the request records
    (a Redis restart, other workers without Redis); a new period's or a lost count's sooner.
    """
    ALLOCATIONS_REDIS_PREFIX: str = "igw:alloc:"
    """Prefix of the allocations' Redis keys (one hash per allocation and period)."""

    # --- Fair share: endpoint capacity and its queue (docs/limits.md#fair-share) ------------------
    FAIR_SHARE_QUEUE_TIMEOUT_SECONDS: PositiveFloat = 30.0
    """How long a request may wait for a slot on an endpoint at its max_concurrent (503
    queue_timeout).
    """
    FAIR_SHARE_MAX_QUEUED: PositiveInt = 1000
    """Requests that may wait for a slot on one endpoint at its max_concurrent, all projects
    together; beyond, 503 queue_full."""
    FAIR_SHARE_MAX_QUEUED_PER_PROJECT: PositiveInt = 200
    """Requests of one project that may wait on one endpoint, so that one project's flood cannot
    fill the queue others need; beyond, 503 queue_full."""
    FAIR_SHARE_GRACE_SECONDS: NonNegativeFloat = 0.05
    """A slot given back by a project below its share, with nothing waiting while others wait, is
    kept this long for the project's next request (anticipation; 0 = off). Measured in the
    noisy-neighbour test: without it a one-at-a-time user waits a whole service time each time.
    """

    # --- Accounting: request records (docs/accounting.md) -----------------------------------------
    RECORDS_ENABLED: bool = True
    """Off: no record is written at all (the benchmark's comparison; metrics still count)."""
    RECORD_QUEUE_SIZE: PositiveInt = 10_000
    """Records waiting for the database, in memory, per process; past it they go to the spool file.
"""
    RECORD_BATCH_SIZE: PositiveInt = 500
    """Records per insert (one multi-row INSERT each)."""
    RECORD_RETRY_SECONDS: PositiveFloat = 2.0
    """While the database is down: seconds between attempts."""
    RECORD_SPOOL_DIR: str = ""
    """Directory of the record spool files (default: GATEWAY_DATA_DIR/record-spool)."""
    RECORD_SPOOL_MAX_BYTES: PositiveInt = 256 * 1024 * 1024
    """Spool files (records kept on disk while the database is down), per process; past it,
    dropped.
    """
    RECORD_SHUTDOWN_SECONDS: NonNegativeFloat = 5.0
    """At shutdown: seconds to write what is queued before spooling the rest."""
    RECORD_PROMPTS: bool = False
    """Store each request's body and its answer (for a stream, its events) in its record, each cut
    to RECORD_PROMPT_MAX_CHARS; off: neither is stored."""
    RECORD_PROMPT_MAX_CHARS: PositiveInt = 16_384
    """With RECORD_PROMPTS: characters kept of each stored prompt and answer (their start)."""
    RECORD_RETENTION_DAYS: NonNegativeInt = 365
    """`purge_records` deletes records older than this (days; 0 keeps them forever)."""
    ROLLUP_RETENTION_DAYS: NonNegativeInt = 3 * 365
    """`purge_records` deletes the hourly roll-up (the dashboard's day and 30-day charts) older
    than this (days; 0 keeps it forever): summed usage outlives the records it came from."""
    TRUSTED_PROXY_NETWORKS: Networks = []
    """Peers whose X-Forwarded-For is believed for the recorded client address (nginx's address)."""

    # --- Metrics and usage (docs/accounting.md) ---------------------------------------------------
    METRICS_ENABLED: bool = True
    """Off: no series are kept and GET /metrics answers 404 (for measuring their cost)."""
    METRICS_TOKEN: str = ""
    """When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise; compared
    in constant time). With neither this nor METRICS_ALLOWED_NETWORKS, /metrics answers 404 outside
    development mode."""
    METRICS_DIR: str = ""
    """Where worker processes keep metric values (default: GATEWAY_DATA_DIR/metrics)."""
    METRICS_ALLOWED_NETWORKS: Networks = []
    """When set, GET /metrics answers only clients in these networks (list; 403 otherwise); with
    METRICS_TOKEN too, both are needed."""
    USAGE_DEFAULT_DAYS: PositiveInt = 30
    """GET /resource_server/v1/usage without start: the window's length (days, ending with end,
    which defaults to today)."""
    USAGE_MAX_DAYS: PositiveInt = 366
    """GET /resource_server/v1/usage: the longest window (days) one request may ask for; longer
    answers 400 window_too_long."""
    USAGE_MAX_ROWS: PositiveInt = 10_000
    """Most rows (groups of model x day, or of the `by` key) one usage answer holds; beyond, 400."""
    USAGE_MAX_PENDING: PositiveInt = 8
    """Usage queries waiting for the usage thread (per worker); more answer 503 usage_busy."""

    # --- Batches: files, batches, the batch worker (docs/batches.md) ------------------------------
    BATCH_STORAGE_DIR: str = ""
    """Directory of uploaded and output batch files (default: GATEWAY_DATA_DIR/batch-files)."""
    BATCH_FILE_MAX_BYTES: PositiveInt = 200 * 1024 * 1024
    """Largest batch file upload (bytes; OpenAI's own limit is 200 MB); larger answers 413
    file_too_large."""
    BATCH_FILE_MAX_LINES: PositiveInt = 50_000
    """Most lines (requests) in one batch file upload (OpenAI's own limit is 50,000); more answer
    400 too_many_lines."""
    BATCH_QUOTA_BYTES: PositiveInt = 2 * 1024 * 1024 * 1024
    """Bytes of batch files one principal may store, inputs and outputs together; an upload beyond
    answers 403 storage_quota_exceeded."""
    BATCH_QUOTA_FILES: PositiveInt = 500
    """Batch files one principal may store, inputs and outputs together; an upload beyond answers
    403 file_quota_exceeded."""
    MAX_BATCHES_PER_USER: PositiveInt = 10
    """Batches per principal not yet finished (both APIs; the reference gateway's name)."""
    BATCH_CONCURRENCY_PER_ENDPOINT: PositiveInt = 16
    """The batch worker: lines in flight at once on one endpoint."""
    BATCH_MAX_IN_FLIGHT: PositiveInt = 64
    """The batch worker: lines in flight at once over all endpoints."""
    BATCH_CLAIM_SECONDS: PositiveFloat = 30.0
    """A worker's claim on a batch lasts this long unless renewed (a crashed worker's expires)."""
    BATCH_POLL_SECONDS: PositiveFloat = 1.0
    """Seconds between looks for work while idle."""
    BATCH_CLUSTER_ROOTS: PathsMap = {}
    """JSON {"cluster": ["/root", ...]}: a cluster batch's paths must lie inside one of its
    cluster's roots (none: the cluster takes no batches)."""
    BATCH_TASK_TIMEOUT_SECONDS: PositiveFloat = 7 * 24 * 3600.0
    """How long the worker waits for a cluster batch's function before the batch fails (s)."""
    DASHBOARD_OPERATOR_GROUPS: StrList = []
    """Globus groups whose active members may sign in to /dashboard/ with Globus (with
    GLOBUS_APPLICATION_ID/SECRET); empty: staff accounts only (docs/dashboard.md)."""
    DASHBOARD_CACHE_SECONDS: NonNegativeInt = 5
    """How long a chart's aggregate is reused (s): each chart is one query, at most once per
    this; 0: no cache."""
    DASHBOARD_TOP_ROWS: PositiveInt = 10
    """Rows of the "busiest" charts (users, projects, models, clusters, error groups)."""
    DASHBOARD_RECENT_ROWS: PositiveInt = 50
    """Rows of the recent-request and recent-batch tables."""
    DASHBOARD_REFRESH_SECONDS: PositiveInt = 5
    """How often the clusters page re-reads the live state (s)."""
    DASHBOARD_GLOBUS_SESSION_SECONDS: PositiveInt = 8 * 3600
    """How long a Globus sign-in to the dashboard lasts (s) before the group membership is
    checked again."""

    @model_validator(mode="after")
    def _check_together(self) -> GatewaySettings:
        """Rules that span settings; each error names the variable to change."""
        dev = self.GATEWAY_DEV_MODE
        if self.DEBUG and not dev:
            raise ValueError(
                "DEBUG=true is refused outside development mode; unset it in production "
                "(or set GATEWAY_DEV_MODE=true on a developer's machine)."
            )
        if not self.SECRET_KEY and not dev:
            raise ValueError(
                "SECRET_KEY is not set. Set it to a long random string, "
                "or set GATEWAY_DEV_MODE=true for a local development run."
            )
        for name in ("SECRET_KEY", "INTERNAL_STREAMING_SECRET"):
            # Both sign or guard the side channel: a guessable value lets anyone forge chunks.
            value = getattr(self, name)
            if value and not dev and (weakness := secret_weakness(value)):
                raise ValueError(f"{name} is too weak: {weakness}. {_SECRET_HINT}")
        if self.compute_streaming and not dev and not self.INTERNAL_STREAMING_SECRET:
            raise ValueError(
                "INTERNAL_STREAMING_SECRET is not set while Globus Compute streaming is "
                f"configured ({self.compute_streaming}). {_SECRET_HINT}"
            )
        for client, secret in (
            ("GLOBUS_APPLICATION_ID", "GLOBUS_APPLICATION_SECRET"),
            ("SERVICE_ACCOUNT_ID", "SERVICE_ACCOUNT_SECRET"),
        ):
            if getattr(self, client) and not getattr(self, secret) and not dev:
                raise ValueError(f"{secret} is not set, but {client} is: set both or neither.")
        return self

    @property
    def compute_streaming(self) -> str:
        """Why compute streams may run through this gateway ("" when they cannot): the
        side channel's chunks reach the worker holding the client only through Redis."""
        if self.COMPUTE_EXECUTOR == "local":
            return "COMPUTE_EXECUTOR=local"
        if self.SERVICE_ACCOUNT_ID:
            return "SERVICE_ACCOUNT_ID is set"
        return ""


_SECRET_HINT = (
    'Set it to a long random string: python -c "import secrets; print(secrets.token_urlsafe(50))"'
)


def worker_count(
    settings: GatewaySettings, environ: Mapping[str, str], argv: list[str]
) -> tuple[int, str]:
    """How many worker processes share this gateway's state, and where that was read:
    GATEWAY_WORKERS (all hosts together, set by the deploy files), else WEB_CONCURRENCY
    (uvicorn's and gunicorn's own variable), else --workers/-w on the server's command line."""
    if settings.GATEWAY_WORKERS is not None:
        return settings.GATEWAY_WORKERS, "GATEWAY_WORKERS"
    raw = environ.get("WEB_CONCURRENCY", "").strip()
    if raw.isdigit():
        return int(raw), "WEB_CONCURRENCY"
    for index, arg in enumerate(argv):
        value = ""
        if arg.startswith("--workers="):
            value = arg.split("=", 1)[1]
        elif arg in ("--workers", "-w") and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("-w") and arg[2:].isdigit():
            value = arg[2:]
        if value.isdigit():
            return int(value), f"the server's {arg.split('=')[0][:9]} option"
    return 1, ""


def check_workers(workers: int, source: str, redis_url: str, streaming: str) -> None:
    """Several workers without Redis would each hold their own streams: a chunk posted to one
    worker never reaches the client waiting on another. Refused at start; `streaming` says why
    compute streams may run ("" when they cannot)."""
    if workers > 1 and not redis_url and streaming:
        raise ConfigurationError(
            f"{workers} workers ({source}) without REDIS_URL while Globus Compute streaming is "
            f"configured ({streaming}): streamed chunks would reach the wrong worker. "
            "Set REDIS_URL, or run one worker (GATEWAY_WORKERS=1)."
        )


def _describe(error: ValidationError) -> str:
    """One line per wrong variable: its name, the value (never a secret's) and what is wrong."""
    lines = []
    for item in error.errors(include_url=False):
        name = str(item["loc"][0]) if item["loc"] else ""
        message = item["msg"].removeprefix("Value error, ")
        if not name:  # a cross-setting rule: the message names its variables
            lines.append(message)
            continue
        shown = "" if name in _SECRETS else f"={item.get('input')!r}"
        where = "".join(f"[{part!r}]" for part in item["loc"][1:])
        field = GatewaySettings.model_fields.get(name)
        shapes = [m for m in field.metadata if isinstance(m, Shape)] if field else []
        shape = f"; it must be {shapes[0]}" if shapes else ""
        lines.append(f"{name}{where}{shown}: {message}{shape}")
    return "Invalid settings:\n  " + "\n  ".join(lines)


def load(argv: list[str] | None = None) -> GatewaySettings:
    """Read and check every setting from the environment; a wrong one raises
    ConfigurationError naming it (and every other wrong one, all at once)."""
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None
    workers, source = worker_count(settings, os.environ, sys.argv if argv is None else argv)
    check_workers(workers, source, settings.REDIS_URL, settings.compute_streaming)
    return settings
