"""Django settings: everything comes from the environment (see .env.example)."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from inference_gateway import env

BASE_DIR = Path(__file__).resolve().parent.parent

# Development mode allows insecure defaults (secret key, streaming secret). Never in production.
DEV_MODE = env.get_bool("GATEWAY_DEV_MODE", False)
DEBUG = env.get_bool("DEBUG", False)
if DEBUG and not DEV_MODE:
    # Debug pages show settings and tracebacks to anyone who reaches the admin.
    raise env.ConfigurationError(
        "DEBUG=true is refused outside development mode; unset it in production "
        "(or set GATEWAY_DEV_MODE=true on a developer's machine)."
    )

DATA_DIR = Path(env.get_str("GATEWAY_DATA_DIR") or BASE_DIR / "var")

SECRET_KEY = env.get_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEV_MODE:
        raise env.ConfigurationError(
            "SECRET_KEY is not set. Set it to a long random string, "
            "or set GATEWAY_DEV_MODE=true for a local development run."
        )
    SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"
elif not DEV_MODE and (weakness := env.secret_weakness(SECRET_KEY)):
    # It signs the side channel's task tokens: a guessable key lets anyone forge them.
    raise env.ConfigurationError(
        f"SECRET_KEY is too weak: {weakness}. Set it to a long random string: "
        'python -c "import secrets; print(secrets.token_urlsafe(50))"'
    )

ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS")
# Admin session and CSRF cookies only over HTTPS (behind a TLS proxy, run uvicorn with
# --proxy-headers so that Django sees the original scheme). Off in development mode.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.get_bool("SECURE_COOKIES", not DEV_MODE)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "resource_server_async",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "inference_gateway.urls"

# Admin sign-in: Django's user check, throttled per client address (login_throttle.py).
AUTHENTICATION_BACKENDS = ["resource_server_async.login_throttle.ThrottledModelBackend"]
# Failed sign-ins allowed from one address, and the window (s) after which the count restarts;
# past the limit, that address cannot sign in until the window ends.
ADMIN_LOGIN_MAX_FAILURES = env.get_int("ADMIN_LOGIN_MAX_FAILURES", 5)
ADMIN_LOGIN_LOCKOUT_SECONDS = env.get_int("ADMIN_LOGIN_LOCKOUT_SECONDS", 900)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data -------------------------------------------------------------------------------------

DATABASE_URL = env.get_str("DATABASE_URL")
if not DATABASE_URL:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{DATA_DIR / 'gateway.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env.get_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the API's background readers run while the admin or loaddata writes.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = "PRAGMA journal_mode=WAL;"
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.get_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.get_str("CACHE_KEY_PREFIX", "gateway"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Static files and i18n (admin) ------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------------------------

LOG_LEVEL = env.get_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- API --------------------------------------------------------------------------------------

# On SIGTERM, how long (seconds) open streams may run on before they are ended with a final
# error event; run the server with a longer graceful-shutdown timeout (deploy/).
GATEWAY_DRAIN_SECONDS = env.get_float("GATEWAY_DRAIN_SECONDS", 30.0)
# Largest request body the API reads (bytes); larger bodies answer 413.
MAX_REQUEST_BODY_BYTES = env.get_int("MAX_REQUEST_BODY_BYTES", 20 * 1024 * 1024)
# Deepest nesting of arrays and objects in a JSON body; deeper answers 400 (orjson itself
# cannot re-encode more than 254 levels, so this must stay well below).
MAX_JSON_DEPTH = env.get_int("MAX_JSON_DEPTH", 64)
# Largest request line plus headers (bytes) a worker reads; larger answers 431. Enforced by
# the HTTP protocol of inference_gateway/server.py (uvicorn --http ...), not by the app.
MAX_REQUEST_HEADER_BYTES = env.get_int("MAX_REQUEST_HEADER_BYTES", 64 * 1024)
# How often (s) each worker checks whether clusters or endpoints changed in the database.
CATALOG_REFRESH_SECONDS = env.get_float("CATALOG_REFRESH_SECONDS", 1.0)

# --- Model servers (direct API endpoints) -----------------------------------------------------

# Seconds to open a TCP connection to a model server (the whole call uses api_request_timeout).
UPSTREAM_CONNECT_TIMEOUT = env.get_float("UPSTREAM_CONNECT_TIMEOUT", 10.0)
# Open connections kept per model server (one pool per server, shared by all its endpoints).
UPSTREAM_MAX_CONNECTIONS = env.get_int("UPSTREAM_MAX_CONNECTIONS", 256)
# Seconds a call waits for a free pooled connection once all are in use (then 503
# upstream_busy with Retry-After); never longer than the endpoint's api_request_timeout.
UPSTREAM_POOL_WAIT_SECONDS = env.get_float("UPSTREAM_POOL_WAIT_SECONDS", 10.0)
# Largest non-streaming answer read from a model server (bytes); larger ones answer 502
# upstream_response_too_large without being read whole.
UPSTREAM_MAX_RESPONSE_BYTES = env.get_int("UPSTREAM_MAX_RESPONSE_BYTES", 64 * 1024 * 1024)
# Seconds an idle pooled connection to a model server stays open.
UPSTREAM_KEEPALIVE_SECONDS = env.get_float("UPSTREAM_KEEPALIVE_SECONDS", 30.0)
# Seconds a cluster's model status page (Metis status_url) is reused before it is fetched again.
MODEL_STATUS_CACHE_SECONDS = env.get_float("MODEL_STATUS_CACHE_SECONDS", 5.0)
# Seconds an expired status page reading may still answer while one fetch replaces it (and
# while the page fails); past that, requests wait for a fresh read.
MODEL_STATUS_STALE_SECONDS = env.get_float("MODEL_STATUS_STALE_SECONDS", 60.0)
# Federated routing (inference/routing.py): an endpoint whose calls failed (unreachable, not
# live, timed out, ...) ROUTING_CIRCUIT_FAILURES times in a row is ranked last for
# ROUTING_CIRCUIT_COOLDOWN_SECONDS, then one request probes it. A request moves on to the next
# candidate only within ROUTING_FAILOVER_SECONDS of its first try. With REDIS_URL, workers share
# their in-flight counts and open circuits every ROUTING_SHARE_SECONDS under ROUTING_REDIS_PREFIX.
ROUTING_CIRCUIT_FAILURES = env.get_int("ROUTING_CIRCUIT_FAILURES", 3)
ROUTING_CIRCUIT_COOLDOWN_SECONDS = env.get_float("ROUTING_CIRCUIT_COOLDOWN_SECONDS", 15.0)
ROUTING_FAILOVER_SECONDS = env.get_float("ROUTING_FAILOVER_SECONDS", 30.0)
ROUTING_SHARE_SECONDS = env.get_float("ROUTING_SHARE_SECONDS", 0.5)
ROUTING_REDIS_PREFIX = env.get_str("ROUTING_REDIS_PREFIX", "igw:routing:")
# vLLM's prefix cache salted per principal (`cache_salt` added to chat/completions and
# completions bodies sent to vllm endpoints), so that one user's cached prefixes cannot speed up,
# and so reveal themselves to, another's requests. Costs a re-serialised body per request.
VLLM_CACHE_SALT = env.get_bool("VLLM_CACHE_SALT", False)
# Live state of endpoints (clusters/live_state.py): re-read in the background at most once per
# LIVE_STATE_SECONDS; a direct server without a status page is probed (GET /v1/models) with
# LIVE_STATE_PROBE_TIMEOUT; the first request for an endpoint never read waits at most
# LIVE_STATE_FIRST_WAIT seconds for its state (then ranks it "unknown").
LIVE_STATE_SECONDS = env.get_float("LIVE_STATE_SECONDS", 5.0)
LIVE_STATE_PROBE_TIMEOUT = env.get_float("LIVE_STATE_PROBE_TIMEOUT", 2.0)
LIVE_STATE_FIRST_WAIT = env.get_float("LIVE_STATE_FIRST_WAIT", 1.0)

# --- Authentication (CONTRACT.md §6 names) ----------------------------------------------------

GLOBUS_APPLICATION_ID = env.get_str("GLOBUS_APPLICATION_ID")
GLOBUS_APPLICATION_SECRET = env.get_str("GLOBUS_APPLICATION_SECRET")
AUTHORIZED_IDP_DOMAINS = env.get_list("AUTHORIZED_IDP_DOMAINS")
AUTHORIZED_GROUPS_PER_IDP = env.get_json_object(
    "AUTHORIZED_GROUPS_PER_IDP",
    lambda groups: (
        isinstance(groups, str)
        or (isinstance(groups, list) and all(isinstance(g, str) for g in groups))
    ),
    "groups as a string or a list of strings",
)
GLOBUS_GROUPS = env.get_list("GLOBUS_GROUPS")
GLOBUS_POLICIES = env.get_list("GLOBUS_POLICIES")
AUTHORIZED_GLOBUS_SERVICE_USERNAMES = env.get_json_list("AUTHORIZED_GLOBUS_SERVICE_USERNAMES")
# Upper bound (s) on how long a validated Globus token is trusted without asking Globus again.
AUTH_CACHE_MAX_SECONDS = env.get_int("AUTH_CACHE_MAX_SECONDS", 300)
GLOBUS_INTROSPECT_TIMEOUT = env.get_float("GLOBUS_INTROSPECT_TIMEOUT", 10.0)
GLOBUS_INTROSPECT_CONCURRENCY = env.get_int("GLOBUS_INTROSPECT_CONCURRENCY", 8)
# How long (s) a validated gateway API key is trusted before the database is asked again;
# a revoked key stops working within this time.
API_KEY_CACHE_SECONDS = env.get_int("API_KEY_CACHE_SECONDS", 30)
# Accept keys issued before keys carried a checksum (they reach the database when unknown);
# turn off once `list_api_keys` shows no active legacy key.
API_KEY_ACCEPT_LEGACY = env.get_bool("API_KEY_ACCEPT_LEGACY", True)
# Seconds, and how many, unknown key hashes are remembered, so a repeated guess skips the database.
API_KEY_NEGATIVE_CACHE_SECONDS = env.get_float("API_KEY_NEGATIVE_CACHE_SECONDS", 5.0)
API_KEY_NEGATIVE_CACHE_SIZE = env.get_int("API_KEY_NEGATIVE_CACHE_SIZE", 10_000)
# Distinct uncached keys waiting for the database per worker; beyond it, 503 with Retry-After.
API_KEY_MAX_PENDING_LOOKUPS = env.get_int("API_KEY_MAX_PENDING_LOOKUPS", 256)
# Personal keys (POST /resource_server/v1/keys, docs/auth.md): the longest expiry (days) a
# researcher may ask for, how many active keys one owner may hold, and how often (s) the gateway
# re-reads a key owner's group memberships from Globus (the owner's rules are re-applied then).
PERSONAL_KEY_MAX_DAYS = env.get_int("PERSONAL_KEY_MAX_DAYS", 90)
PERSONAL_KEYS_PER_OWNER = env.get_int("PERSONAL_KEYS_PER_OWNER", 10)
PERSONAL_KEY_RECHECK_SECONDS = env.get_int("PERSONAL_KEY_RECHECK_SECONDS", 300)
# What `igw login` asks the gateway for (GET /resource_server/v1/auth/config): the Globus
# native-app client id the command logs in with (registered by the operator, a "thick client").
GLOBUS_CLI_CLIENT_ID = env.get_str("GLOBUS_CLI_CLIENT_ID")

# --- Globus Compute ---------------------------------------------------------------------------

SERVICE_ACCOUNT_ID = env.get_str("SERVICE_ACCOUNT_ID")
SERVICE_ACCOUNT_SECRET = env.get_str("SERVICE_ACCOUNT_SECRET")
GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES = env.get_json_object(
    "GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES",
    lambda item: (
        isinstance(item, dict)
        and all(
            isinstance(item.get(key), str) and item[key] for key in ("client_id", "client_secret")
        )
    ),
    '{"client_id": "...", "client_secret": "..."}',
)
# "globus" submits to Globus Compute; "local" runs the same functions on this machine.
COMPUTE_EXECUTOR = env.get_str("COMPUTE_EXECUTOR", "globus")
LOCAL_COMPUTE_FUNCTIONS = env.get_json_object(
    "LOCAL_COMPUTE_FUNCTIONS", env.is_str, "a dotted path to a function"
)
COMPUTE_RESULT_TIMEOUT = env.get_float("COMPUTE_RESULT_TIMEOUT", 300.0)

# --- Streaming side channel -------------------------------------------------------------------

STREAMING_SERVER_HOST = env.get_str("STREAMING_SERVER_HOST", "127.0.0.1")
STREAMING_SERVER_PORT = env.get_int("STREAMING_SERVER_PORT", 8000)
STREAMING_SERVER_PROTOCOL = env.get_str("STREAMING_SERVER_PROTOCOL", "https")
INTERNAL_STREAMING_SECRET = env.get_str("INTERNAL_STREAMING_SECRET")
if not INTERNAL_STREAMING_SECRET and DEV_MODE:
    INTERNAL_STREAMING_SECRET = "dev-only-insecure-streaming-secret"

# --- Compute executors, stream hub and /jobs ---------------------------------------------------

# How often (s) the results of pending Globus Compute tasks are asked for (one call for all).
COMPUTE_POLL_INTERVAL = env.get_float("COMPUTE_POLL_INTERVAL", 0.5)
# How long (s) an endpoint's status from the Compute service is reused before a background
# refresh; after 10x this long without a refresh, a request waits for a fresh answer.
COMPUTE_STATUS_CACHE_SECONDS = env.get_float("COMPUTE_STATUS_CACHE_SECONDS", 10.0)
# Timeout (s) of one call to the Globus Compute web service (submit, status, results).
COMPUTE_SERVICE_TIMEOUT = env.get_float("COMPUTE_SERVICE_TIMEOUT", 30.0)
# Threads for the synchronous Globus SDKs, and tasks allowed to wait for submission (per
# endpoint).
COMPUTE_SDK_THREADS = env.get_int("COMPUTE_SDK_THREADS", 8)
# ...of which one endpoint's calls (submissions, status) may hold at once, so that a slow or
# hung endpoint leaves the rest of the threads to the others.
COMPUTE_SDK_THREADS_PER_ENDPOINT = env.get_int("COMPUTE_SDK_THREADS_PER_ENDPOINT", 2)
COMPUTE_SUBMIT_QUEUE = env.get_int("COMPUTE_SUBMIT_QUEUE", 1000)
# Retry-After (s) answered while a model's batch job starts (endpoint online, no workers).
COMPUTE_STARTING_RETRY_AFTER = env.get_int("COMPUTE_STARTING_RETRY_AFTER", 60)
# At most one wake-up probe per endpoint in this many seconds (it makes the endpoint scale up).
COMPUTE_WAKE_INTERVAL = env.get_float("COMPUTE_WAKE_INTERVAL", 600.0)
# COMPUTE_EXECUTOR=local: functions run in this many threads; more waiting tasks answer 503.
LOCAL_COMPUTE_WORKERS = env.get_int("LOCAL_COMPUTE_WORKERS", 8)
LOCAL_COMPUTE_QUEUE = env.get_int("LOCAL_COMPUTE_QUEUE", 64)
# Streaming: seconds to wait for the first chunk (the task may queue), then between chunks.
STREAMING_FIRST_CHUNK_TIMEOUT = env.get_float("STREAMING_FIRST_CHUNK_TIMEOUT", 300.0)
STREAMING_IDLE_TIMEOUT = env.get_float("STREAMING_IDLE_TIMEOUT", 120.0)
# After a compute stream ended, how long its task's result (the function's response_time and
# throughput, for the record) is awaited; the answer is not held. 0: not awaited.
STREAMING_RESULT_WAIT_SECONDS = env.get_float("STREAMING_RESULT_WAIT_SECONDS", 10.0)
# Longest life (s) of one stream; its task token expires then.
STREAMING_MAX_SECONDS = env.get_int("STREAMING_MAX_SECONDS", 3600)
# Largest side-channel POST body (bytes), and chunk posts held for a slow client per stream.
STREAMING_MAX_BODY_BYTES = env.get_int("STREAMING_MAX_BODY_BYTES", 1024 * 1024)
STREAMING_BACKLOG = env.get_int("STREAMING_BACKLOG", 2000)
# ...and bytes of chunk text held per stream for a slow client (posts beyond answer 503).
STREAMING_BACKLOG_BYTES = env.get_int("STREAMING_BACKLOG_BYTES", 4 * 1024 * 1024)
# With REDIS_URL: streams open at once per worker process, each waiting on a Redis connection
# of its own; a stream request beyond answers 503 stream_hub_busy.
STREAMING_REDIS_READERS = env.get_int("STREAMING_REDIS_READERS", 500)
# /resource_server/{cluster}/jobs: seconds a cluster's job list is reused, and the timeout of
# the cluster's status function.
JOBS_CACHE_SECONDS = env.get_float("JOBS_CACHE_SECONDS", 60.0)
JOBS_FUNCTION_TIMEOUT = env.get_float("JOBS_FUNCTION_TIMEOUT", 60.0)

# --- Responses API ----------------------------------------------------------------------------

# The store of Responses conversations for previous_response_id on translated endpoints
# (response_store.py): off by default (the gateway is stateless); with REDIS_URL in
# Redis, shared by all workers, else per process. Bounded by entries (least recently stored go
# first), bytes per stored response (larger ones are not stored) and seconds kept.
RESPONSES_STORE = env.get_bool("RESPONSES_STORE", False)
RESPONSES_STORE_MAX_ENTRIES = env.get_int("RESPONSES_STORE_MAX_ENTRIES", 10000)
RESPONSES_STORE_MAX_BYTES = env.get_int("RESPONSES_STORE_MAX_BYTES", 1024 * 1024)
RESPONSES_STORE_TTL = env.get_int("RESPONSES_STORE_TTL", 3600)

# --- Operations -------------------------------------------------------------------------------

# JSON {"<cluster>": "<notice>"}: the cluster's requests answer 503 with the notice.
MAINTENANCE_ERROR_NOTICES = env.get_json_object(
    "MAINTENANCE_ERROR_NOTICES", env.is_str, "a notice string"
)
# JSON {"<old endpoint slug>": "<new endpoint slug>"}: requests for a renamed model (same cluster
# and framework) reach the new endpoint, which receives its own model name.
LEGACY_ENDPOINT_SLUG_MAPPING = env.get_json_object(
    "LEGACY_ENDPOINT_SLUG_MAPPING", env.is_str, "a new endpoint slug"
)
# GET /resource_server/ready: seconds an answer is reused, and the longest wait for the
# database or Redis before it counts as down.
READY_CACHE_SECONDS = env.get_float("READY_CACHE_SECONDS", 1.0)
READY_TIMEOUT_SECONDS = env.get_float("READY_TIMEOUT_SECONDS", 2.0)

# --- Admission limits (docs/limits.md) ---------------------------------------------------------

# The period of the per-minute limits (rpm_*, tpm_*), in seconds: a full bucket refills in it.
LIMITS_WINDOW_SECONDS = env.get_float("LIMITS_WINDOW_SECONDS", 60.0)
# Gateway-wide limits for endpoints whose own field is 0 (0 here = unlimited).
LIMITS_DEFAULT_RPM_USER = env.get_int("LIMITS_DEFAULT_RPM_USER", 0)
LIMITS_DEFAULT_TPM_USER = env.get_int("LIMITS_DEFAULT_TPM_USER", 0)
LIMITS_DEFAULT_MAX_CONCURRENT_USER = env.get_int("LIMITS_DEFAULT_MAX_CONCURRENT_USER", 0)
LIMITS_DEFAULT_RPM_MODEL = env.get_int("LIMITS_DEFAULT_RPM_MODEL", 0)
LIMITS_DEFAULT_TPM_MODEL = env.get_int("LIMITS_DEFAULT_TPM_MODEL", 0)
# Completion tokens reserved for a request that names no max_tokens (corrected at its end).
LIMITS_RESERVE_COMPLETION_TOKENS = env.get_int("LIMITS_RESERVE_COMPLETION_TOKENS", 1024)
# With REDIS_URL, when Redis does not answer: "open" admits (a warning, at most once a minute),
# "closed" answers 503 limits_unavailable. Seconds to wait for Redis per decision.
LIMITS_REDIS_FAILURE = env.get_str("LIMITS_REDIS_FAILURE", "open").lower()
if LIMITS_REDIS_FAILURE not in ("open", "closed"):
    raise env.ConfigurationError(
        f"LIMITS_REDIS_FAILURE must be 'open' or 'closed', not {LIMITS_REDIS_FAILURE!r}."
    )
LIMITS_REDIS_TIMEOUT = env.get_float("LIMITS_REDIS_TIMEOUT", 0.5)
# Admission's Redis calls waiting for their reply, per worker process (one pipelined
# connection); past it a decision fails at once, as when Redis is down (LIMITS_REDIS_FAILURE).
LIMITS_REDIS_MAX_PENDING = env.get_int("LIMITS_REDIS_MAX_PENDING", 10_000)
# Prefix of the limiter's Redis keys (two gateways sharing one Redis keep apart by it).
LIMITS_REDIS_PREFIX = env.get_str("LIMITS_REDIS_PREFIX", "igw:limits:")
# Without Redis: limit states kept per process (least recently used forgotten first).
LIMITS_MEMORY_MAX_KEYS = env.get_int("LIMITS_MEMORY_MAX_KEYS", 100_000)
# A concurrency slot whose request never released it (a worker that died) frees itself then.
LIMITS_SLOT_LEASE_SECONDS = env.get_int("LIMITS_SLOT_LEASE_SECONDS", 3600)
# Allocations: seconds between rebuilds of what each allocation spent from the request records
# (a Redis restart, other workers without Redis); a new period's or a lost count's sooner.
ALLOCATIONS_RECONCILE_SECONDS = env.get_float("ALLOCATIONS_RECONCILE_SECONDS", 60.0)
# Prefix of the allocations' Redis keys (one hash per allocation and period).
ALLOCATIONS_REDIS_PREFIX = env.get_str("ALLOCATIONS_REDIS_PREFIX", "igw:alloc:")

# --- Fair share: endpoint capacity and its queue (docs/limits.md#fair-share) -------------------

# How long a request may wait for a slot on an endpoint at its max_concurrent (503 queue_timeout).
FAIR_SHARE_QUEUE_TIMEOUT_SECONDS = env.get_float("FAIR_SHARE_QUEUE_TIMEOUT_SECONDS", 30.0)
# Requests that may wait per endpoint, and per project on one endpoint (503 queue_full beyond).
FAIR_SHARE_MAX_QUEUED = env.get_int("FAIR_SHARE_MAX_QUEUED", 1000)
FAIR_SHARE_MAX_QUEUED_PER_PROJECT = env.get_int("FAIR_SHARE_MAX_QUEUED_PER_PROJECT", 200)
# A slot given back by a project below its share, with nothing waiting while others wait, is
# kept this long for the project's next request (anticipation; 0 = off). Measured in the
# noisy-neighbour test: without it a one-at-a-time user waits a whole service time each time.
FAIR_SHARE_GRACE_SECONDS = env.get_float("FAIR_SHARE_GRACE_SECONDS", 0.05)

# --- Accounting: request records (docs/accounting.md) -----------------------------------------

# Off: no record is written at all (the benchmark's comparison; metrics still count).
RECORDS_ENABLED = env.get_bool("RECORDS_ENABLED", True)
# Records waiting for the database, in memory, per process; past it they go to the spool file.
RECORD_QUEUE_SIZE = env.get_int("RECORD_QUEUE_SIZE", 10_000)
# Records per insert (one multi-row INSERT each).
RECORD_BATCH_SIZE = env.get_int("RECORD_BATCH_SIZE", 500)
# While the database is down: seconds between attempts.
RECORD_RETRY_SECONDS = env.get_float("RECORD_RETRY_SECONDS", 2.0)
# Spool files (records kept on disk while the database is down), per process; past it, dropped.
RECORD_SPOOL_DIR = Path(env.get_str("RECORD_SPOOL_DIR") or DATA_DIR / "record-spool")
RECORD_SPOOL_MAX_BYTES = env.get_int("RECORD_SPOOL_MAX_BYTES", 256 * 1024 * 1024)
# At shutdown: seconds to write what is queued before spooling the rest.
RECORD_SHUTDOWN_SECONDS = env.get_float("RECORD_SHUTDOWN_SECONDS", 5.0)
# Prompts and answers are stored only when on; each cut to this many characters.
RECORD_PROMPTS = env.get_bool("RECORD_PROMPTS", False)
RECORD_PROMPT_MAX_CHARS = env.get_int("RECORD_PROMPT_MAX_CHARS", 16_384)
# `purge_records` deletes records older than this (days; 0 keeps them forever).
RECORD_RETENTION_DAYS = env.get_int("RECORD_RETENTION_DAYS", 365)
# Peers whose X-Forwarded-For is believed for the recorded client address (nginx's address).
TRUSTED_PROXY_NETWORKS = env.get_networks("TRUSTED_PROXY_NETWORKS")

# --- Metrics and usage (docs/accounting.md) ---------------------------------------------------

# Off: no series are kept and GET /metrics answers 404 (for measuring their cost).
METRICS_ENABLED = env.get_bool("METRICS_ENABLED", True)
# GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` when set, and a client address in
# METRICS_ALLOWED_NETWORKS when set (both when both are set); with neither, it answers 404
# outside development mode.
METRICS_TOKEN = env.get_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env.get_networks("METRICS_ALLOWED_NETWORKS")
# Where the worker processes keep their metric values (one subdirectory per server start).
METRICS_DIR = Path(env.get_str("METRICS_DIR") or DATA_DIR / "metrics")
# GET /resource_server/v1/usage: the window when none is asked for (days, ending today), and
# the longest window one request may ask for (days).
USAGE_DEFAULT_DAYS = env.get_int("USAGE_DEFAULT_DAYS", 30)
USAGE_MAX_DAYS = env.get_int("USAGE_MAX_DAYS", 366)
# Most rows (groups of model x day, or of the `by` key) one usage answer holds; beyond, 400.
USAGE_MAX_ROWS = env.get_int("USAGE_MAX_ROWS", 10_000)
# Usage queries waiting for the usage thread (per worker); more answer 503 usage_busy.
USAGE_MAX_PENDING = env.get_int("USAGE_MAX_PENDING", 8)

# --- Batches: files, batches, the batch worker (docs/batches.md) ------------------------------

# One file per upload or output; never in the database.
BATCH_STORAGE_DIR = Path(env.get_str("BATCH_STORAGE_DIR") or DATA_DIR / "batch-files")
# One upload: bytes and lines at most (OpenAI's own limits: 200 MB, 50,000 requests).
BATCH_FILE_MAX_BYTES = env.get_int("BATCH_FILE_MAX_BYTES", 200 * 1024 * 1024)
BATCH_FILE_MAX_LINES = env.get_int("BATCH_FILE_MAX_LINES", 50_000)
# Per principal: bytes and number of files stored (inputs and outputs together).
BATCH_QUOTA_BYTES = env.get_int("BATCH_QUOTA_BYTES", 2 * 1024 * 1024 * 1024)
BATCH_QUOTA_FILES = env.get_int("BATCH_QUOTA_FILES", 500)
# Batches per principal not yet finished (both APIs; the reference gateway's name).
MAX_BATCHES_PER_USER = env.get_int("MAX_BATCHES_PER_USER", 10)
# The worker: lines in flight per endpoint, and in all.
BATCH_CONCURRENCY_PER_ENDPOINT = env.get_int("BATCH_CONCURRENCY_PER_ENDPOINT", 16)
BATCH_MAX_IN_FLIGHT = env.get_int("BATCH_MAX_IN_FLIGHT", 64)
# A worker's claim on a batch lasts this long unless renewed (a crashed worker's expires).
BATCH_CLAIM_SECONDS = env.get_float("BATCH_CLAIM_SECONDS", 30.0)
# Seconds between looks for work while idle.
BATCH_POLL_SECONDS = env.get_float("BATCH_POLL_SECONDS", 1.0)
# The reference gateway's cluster batch route: JSON {"cluster": ["/root", ...]}; a batch's paths
# must lie inside one of its cluster's roots (none: the cluster takes no batches).
BATCH_CLUSTER_ROOTS = env.get_json_object(
    "BATCH_CLUSTER_ROOTS",
    lambda roots: isinstance(roots, list) and all(isinstance(r, str) and r for r in roots),
    '["/path/one", "/path/two"]',
)
# How long the worker waits for a cluster batch's function before the batch fails (s).
BATCH_TASK_TIMEOUT_SECONDS = env.get_float("BATCH_TASK_TIMEOUT_SECONDS", 7 * 24 * 3600.0)
