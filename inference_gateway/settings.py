"""Django settings: everything comes from the environment (see .env.example)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import dj_database_url

from inference_gateway import config

BASE_DIR = Path(__file__).resolve().parent.parent

# Every variable is parsed and checked once here (inference_gateway/config.py declares them,
# docs/settings.md lists them): a wrong value stops manage.py, the ASGI app and the batch worker
# at start with a message naming it.
_cfg = config.load()

# Development mode allows insecure defaults (secret key, streaming secret). Never in production.
DEV_MODE = _cfg.GATEWAY_DEV_MODE
# Worker processes sharing this gateway's state (GATEWAY_WORKERS, else WEB_CONCURRENCY or the
# server's --workers); with several, Globus Compute streaming needs REDIS_URL (checked at start
# here for configured executors, and by the runtime once the catalog names an endpoint).
GATEWAY_WORKERS, GATEWAY_WORKERS_SOURCE = config.worker_count(_cfg, os.environ, sys.argv)
DEBUG = _cfg.DEBUG
DATA_DIR = Path(_cfg.GATEWAY_DATA_DIR or BASE_DIR / "var")
SECRET_KEY = _cfg.SECRET_KEY or "dev-only-insecure-secret-key-do-not-use-in-production"

ALLOWED_HOSTS = _cfg.ALLOWED_HOSTS
CSRF_TRUSTED_ORIGINS = _cfg.CSRF_TRUSTED_ORIGINS
# Admin session and CSRF cookies only over HTTPS (behind a TLS proxy, run uvicorn with
# --proxy-headers so that Django sees the original scheme). Off in development mode.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = (
    not DEV_MODE if _cfg.SECURE_COOKIES is None else _cfg.SECURE_COOKIES
)

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
    # The dashboard's Content-Security-Policy (own scripts only) and no-store.
    "resource_server_async.dashboard.security.DashboardHeaders",
]

ROOT_URLCONF = "inference_gateway.urls"

# Admin sign-in: Django's user check, throttled per client address (login_throttle.py).
AUTHENTICATION_BACKENDS = ["resource_server_async.login_throttle.ThrottledModelBackend"]
# Failed sign-ins allowed from one address, and the window (s) after which the count restarts;
# past the limit, that address cannot sign in until the window ends.
ADMIN_LOGIN_MAX_FAILURES = _cfg.ADMIN_LOGIN_MAX_FAILURES
ADMIN_LOGIN_LOCKOUT_SECONDS = _cfg.ADMIN_LOGIN_LOCKOUT_SECONDS

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The dashboard is a package of the app, not an app: its templates are named here.
        "DIRS": [BASE_DIR / "resource_server_async/dashboard/templates"],
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

DATABASE_URL = _cfg.DATABASE_URL
if not DATABASE_URL:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{DATA_DIR / 'gateway.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=_cfg.DB_CONN_MAX_AGE, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the API's background readers run while the admin or loaddata writes.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = "PRAGMA journal_mode=WAL;"
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = _cfg.REDIS_URL
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": _cfg.CACHE_KEY_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Static files and i18n (admin) ------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
# Chart.js for the dashboard (installed from npm by `make dashboard-assets`), for collectstatic;
# the gateway itself serves it from there too (inference_gateway/asgi.py).
_DASHBOARD = BASE_DIR / "resource_server_async/dashboard"
STATICFILES_DIRS = [
    _DASHBOARD / "static",
    ("dashboard/vendor", _DASHBOARD / "assets/node_modules/chart.js/dist"),
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------------------------

LOG_LEVEL = _cfg.LOG_LEVEL
# JSON lines on stdout for log collectors; plain lines for a developer's terminal.
LOG_FORMAT = _cfg.LOG_FORMAT or ("text" if DEV_MODE else "json")
# One line per API request, from the accounting capture (accounting/request_log.py).
REQUEST_LOG = _cfg.REQUEST_LOG
REQUEST_LOG_QUEUE = _cfg.REQUEST_LOG_QUEUE
REQUEST_LOG_INTERVAL = _cfg.REQUEST_LOG_INTERVAL
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- API --------------------------------------------------------------------------------------

# On SIGTERM, how long (seconds) open streams may run on before they are ended with a final
# error event; run the server with a longer graceful-shutdown timeout (deploy/).
GATEWAY_DRAIN_SECONDS = _cfg.GATEWAY_DRAIN_SECONDS
# How often (s) each worker freezes the objects that survived since its last look, out of the
# collector's full walks; 0: only start-up's (resource_server_async/api/gc_policy.py).
GC_FREEZE_SECONDS = _cfg.GC_FREEZE_SECONDS
# Growth of the Python heap (times its size after the last thaw) at which the worker
# unfreezes and runs one full collection, so that frozen garbage stays bounded.
GC_THAW_GROWTH = _cfg.GC_THAW_GROWTH
# Largest request body the API reads (bytes); larger bodies answer 413.
MAX_REQUEST_BODY_BYTES = _cfg.MAX_REQUEST_BODY_BYTES
# Deepest nesting of arrays and objects in a JSON body; deeper answers 400 (orjson itself
# cannot re-encode more than 254 levels, so this must stay well below).
MAX_JSON_DEPTH = _cfg.MAX_JSON_DEPTH
# Largest request line plus headers (bytes) a worker reads; larger answers 431. Enforced by
# the HTTP protocol of inference_gateway/server.py (uvicorn --http ...), not by the app.
MAX_REQUEST_HEADER_BYTES = _cfg.MAX_REQUEST_HEADER_BYTES
# How often (s) each worker checks whether clusters or endpoints changed in the database.
CATALOG_REFRESH_SECONDS = _cfg.CATALOG_REFRESH_SECONDS

# --- Model servers (direct API endpoints) -----------------------------------------------------

# Seconds to open a TCP connection to a model server (the whole call uses api_request_timeout).
UPSTREAM_CONNECT_TIMEOUT = _cfg.UPSTREAM_CONNECT_TIMEOUT
# Open connections kept per model server (one pool per server, shared by all its endpoints).
UPSTREAM_MAX_CONNECTIONS = _cfg.UPSTREAM_MAX_CONNECTIONS
# Seconds a call waits for a free pooled connection once all are in use (then 503
# upstream_busy with Retry-After); never longer than the endpoint's api_request_timeout.
UPSTREAM_POOL_WAIT_SECONDS = _cfg.UPSTREAM_POOL_WAIT_SECONDS
# Largest non-streaming answer read from a model server (bytes); larger ones answer 502
# upstream_response_too_large without being read whole.
UPSTREAM_MAX_RESPONSE_BYTES = _cfg.UPSTREAM_MAX_RESPONSE_BYTES
# Seconds an idle pooled connection to a model server stays open.
UPSTREAM_KEEPALIVE_SECONDS = _cfg.UPSTREAM_KEEPALIVE_SECONDS
# Seconds a cluster's model status page (Metis status_url) is reused before it is fetched again.
MODEL_STATUS_CACHE_SECONDS = _cfg.MODEL_STATUS_CACHE_SECONDS
# Seconds an expired status page reading may still answer while one fetch replaces it (and
# while the page fails); past that, requests wait for a fresh read.
MODEL_STATUS_STALE_SECONDS = _cfg.MODEL_STATUS_STALE_SECONDS
# Federated routing (inference/routing.py): an endpoint whose calls failed (unreachable, not
# live, timed out, ...) ROUTING_CIRCUIT_FAILURES times in a row is ranked last for
# ROUTING_CIRCUIT_COOLDOWN_SECONDS, then one request probes it. A request moves on to the next
# candidate only within ROUTING_FAILOVER_SECONDS of its first try. With REDIS_URL, workers share
# their in-flight counts and open circuits every ROUTING_SHARE_SECONDS under ROUTING_REDIS_PREFIX.
ROUTING_CIRCUIT_FAILURES = _cfg.ROUTING_CIRCUIT_FAILURES
ROUTING_CIRCUIT_COOLDOWN_SECONDS = _cfg.ROUTING_CIRCUIT_COOLDOWN_SECONDS
ROUTING_FAILOVER_SECONDS = _cfg.ROUTING_FAILOVER_SECONDS
ROUTING_SHARE_SECONDS = _cfg.ROUTING_SHARE_SECONDS
ROUTING_REDIS_PREFIX = _cfg.ROUTING_REDIS_PREFIX
# vLLM's prefix cache salted per principal (`cache_salt` added to chat/completions and
# completions bodies sent to vllm endpoints), so that one user's cached prefixes cannot speed up,
# and so reveal themselves to, another's requests. Costs a re-serialised body per request.
VLLM_CACHE_SALT = _cfg.VLLM_CACHE_SALT
# Live state of endpoints (clusters/live_state.py): re-read in the background at most once per
# LIVE_STATE_SECONDS; a direct server without a status page is probed (GET /v1/models) with
# LIVE_STATE_PROBE_TIMEOUT; the first request for an endpoint never read waits at most
# LIVE_STATE_FIRST_WAIT seconds for its state (then ranks it "unknown").
LIVE_STATE_SECONDS = _cfg.LIVE_STATE_SECONDS
LIVE_STATE_PROBE_TIMEOUT = _cfg.LIVE_STATE_PROBE_TIMEOUT
LIVE_STATE_FIRST_WAIT = _cfg.LIVE_STATE_FIRST_WAIT

# --- Authentication (CONTRACT.md §6 names) ----------------------------------------------------

GLOBUS_APPLICATION_ID = _cfg.GLOBUS_APPLICATION_ID
GLOBUS_APPLICATION_SECRET = _cfg.GLOBUS_APPLICATION_SECRET
AUTHORIZED_IDP_DOMAINS = _cfg.AUTHORIZED_IDP_DOMAINS
AUTHORIZED_GROUPS_PER_IDP: dict[str, Any] = dict(_cfg.AUTHORIZED_GROUPS_PER_IDP)
GLOBUS_GROUPS = _cfg.GLOBUS_GROUPS
GLOBUS_POLICIES = _cfg.GLOBUS_POLICIES
AUTHORIZED_GLOBUS_SERVICE_USERNAMES = _cfg.AUTHORIZED_GLOBUS_SERVICE_USERNAMES
# Upper bound (s) on how long a validated Globus token is trusted without asking Globus again.
AUTH_CACHE_MAX_SECONDS = _cfg.AUTH_CACHE_MAX_SECONDS
GLOBUS_INTROSPECT_TIMEOUT = _cfg.GLOBUS_INTROSPECT_TIMEOUT
GLOBUS_INTROSPECT_CONCURRENCY = _cfg.GLOBUS_INTROSPECT_CONCURRENCY
# How long (s) a validated gateway API key is trusted before the database is asked again;
# a revoked key stops working within this time.
API_KEY_CACHE_SECONDS = _cfg.API_KEY_CACHE_SECONDS
# Accept keys issued before keys carried a checksum (they reach the database when unknown);
# turn off once `list_api_keys` shows no active legacy key.
API_KEY_ACCEPT_LEGACY = _cfg.API_KEY_ACCEPT_LEGACY
# Seconds, and how many, unknown key hashes are remembered, so a repeated guess skips the database.
API_KEY_NEGATIVE_CACHE_SECONDS = _cfg.API_KEY_NEGATIVE_CACHE_SECONDS
API_KEY_NEGATIVE_CACHE_SIZE = _cfg.API_KEY_NEGATIVE_CACHE_SIZE
# Distinct uncached keys waiting for the database per worker; beyond it, 503 with Retry-After.
API_KEY_MAX_PENDING_LOOKUPS = _cfg.API_KEY_MAX_PENDING_LOOKUPS
# Personal keys (POST /resource_server/v1/keys, docs/auth.md): the longest expiry (days) a
# researcher may ask for, how many active keys one owner may hold, and how often (s) the gateway
# re-reads a key owner's group memberships from Globus (the owner's rules are re-applied then).
PERSONAL_KEY_MAX_DAYS = _cfg.PERSONAL_KEY_MAX_DAYS
PERSONAL_KEYS_PER_OWNER = _cfg.PERSONAL_KEYS_PER_OWNER
PERSONAL_KEY_RECHECK_SECONDS = _cfg.PERSONAL_KEY_RECHECK_SECONDS
# What `igw login` asks the gateway for (GET /resource_server/v1/auth/config): the Globus
# native-app client id the command logs in with (registered by the operator, a "thick client").
GLOBUS_CLI_CLIENT_ID = _cfg.GLOBUS_CLI_CLIENT_ID

# --- Globus Compute ---------------------------------------------------------------------------

SERVICE_ACCOUNT_ID = _cfg.SERVICE_ACCOUNT_ID
SERVICE_ACCOUNT_SECRET = _cfg.SERVICE_ACCOUNT_SECRET
GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES: dict[str, Any] = dict(
    _cfg.GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES
)
# "globus" submits to Globus Compute; "local" runs the same functions on this machine.
COMPUTE_EXECUTOR = _cfg.COMPUTE_EXECUTOR
LOCAL_COMPUTE_FUNCTIONS: dict[str, Any] = dict(_cfg.LOCAL_COMPUTE_FUNCTIONS)
COMPUTE_RESULT_TIMEOUT = _cfg.COMPUTE_RESULT_TIMEOUT

# --- Streaming side channel -------------------------------------------------------------------

STREAMING_SERVER_HOST = _cfg.STREAMING_SERVER_HOST
STREAMING_SERVER_PORT = _cfg.STREAMING_SERVER_PORT
STREAMING_SERVER_PROTOCOL = _cfg.STREAMING_SERVER_PROTOCOL
INTERNAL_STREAMING_SECRET = _cfg.INTERNAL_STREAMING_SECRET
if not INTERNAL_STREAMING_SECRET and DEV_MODE:
    INTERNAL_STREAMING_SECRET = "dev-only-insecure-streaming-secret"

# --- Compute executors, stream hub and /jobs ---------------------------------------------------

# How often (s) the results of pending Globus Compute tasks are asked for (one call for all).
COMPUTE_POLL_INTERVAL = _cfg.COMPUTE_POLL_INTERVAL
# How long (s) an endpoint's status from the Compute service is reused before a background
# refresh; after 10x this long without a refresh, a request waits for a fresh answer.
COMPUTE_STATUS_CACHE_SECONDS = _cfg.COMPUTE_STATUS_CACHE_SECONDS
# Timeout (s) of one call to the Globus Compute web service (submit, status, results).
COMPUTE_SERVICE_TIMEOUT = _cfg.COMPUTE_SERVICE_TIMEOUT
# Connections each Globus Compute identity keeps to the Compute service for submissions and
# result polls (one call at a time per endpoint, and one poll).
COMPUTE_SERVICE_CONNECTIONS = _cfg.COMPUTE_SERVICE_CONNECTIONS
# Threads for the synchronous Globus SDKs' calls (sign-in, token renewal, endpoint status).
COMPUTE_SDK_THREADS = _cfg.COMPUTE_SDK_THREADS
# ...of which one endpoint's status calls may hold at once, so that a slow or hung endpoint
# leaves the rest of the threads to the others.
COMPUTE_SDK_THREADS_PER_ENDPOINT = _cfg.COMPUTE_SDK_THREADS_PER_ENDPOINT
COMPUTE_SUBMIT_QUEUE = _cfg.COMPUTE_SUBMIT_QUEUE
COMPUTE_MAX_ANSWER_BYTES = _cfg.COMPUTE_MAX_ANSWER_BYTES
# Retry-After (s) answered while a model's batch job starts (endpoint online, no workers).
COMPUTE_STARTING_RETRY_AFTER = _cfg.COMPUTE_STARTING_RETRY_AFTER
# At most one wake-up probe per endpoint in this many seconds (it makes the endpoint scale up).
COMPUTE_WAKE_INTERVAL = _cfg.COMPUTE_WAKE_INTERVAL
# COMPUTE_EXECUTOR=local: functions run in this many threads; more waiting tasks answer 503.
LOCAL_COMPUTE_WORKERS = _cfg.LOCAL_COMPUTE_WORKERS
LOCAL_COMPUTE_QUEUE = _cfg.LOCAL_COMPUTE_QUEUE
# Streaming: seconds to wait for the first chunk (the task may queue), then between chunks.
STREAMING_FIRST_CHUNK_TIMEOUT = _cfg.STREAMING_FIRST_CHUNK_TIMEOUT
STREAMING_IDLE_TIMEOUT = _cfg.STREAMING_IDLE_TIMEOUT
# After a compute stream ended, how long its task's result (the function's response_time and
# throughput, for the record) is awaited; the answer is not held. 0: not awaited.
STREAMING_RESULT_WAIT_SECONDS = _cfg.STREAMING_RESULT_WAIT_SECONDS
# Longest life (s) of one stream; its task token expires then.
STREAMING_MAX_SECONDS = _cfg.STREAMING_MAX_SECONDS
# Largest side-channel POST body (bytes), and chunk posts held for a slow client per stream.
STREAMING_MAX_BODY_BYTES = _cfg.STREAMING_MAX_BODY_BYTES
STREAMING_BACKLOG = _cfg.STREAMING_BACKLOG
# ...and bytes of chunk text held per stream for a slow client (posts beyond answer 503).
STREAMING_BACKLOG_BYTES = _cfg.STREAMING_BACKLOG_BYTES
# With REDIS_URL: streams open at once per worker process, all read through the process's one
# subscribing Redis connection; a stream request beyond answers 503 stream_hub_busy.
STREAMING_REDIS_READERS = _cfg.STREAMING_REDIS_READERS
# /resource_server/{cluster}/jobs: seconds a cluster's job list is reused, and the timeout of
# the cluster's status function.
JOBS_CACHE_SECONDS = _cfg.JOBS_CACHE_SECONDS
JOBS_FUNCTION_TIMEOUT = _cfg.JOBS_FUNCTION_TIMEOUT

# --- Responses API ----------------------------------------------------------------------------

# The store of Responses conversations for previous_response_id on translated endpoints
# (response_store.py): off by default (the gateway is stateless); with REDIS_URL in
# Redis, shared by all workers, else per process. Bounded by entries (least recently stored go
# first), bytes per stored response (larger ones are not stored) and seconds kept.
RESPONSES_STORE = _cfg.RESPONSES_STORE
RESPONSES_STORE_MAX_ENTRIES = _cfg.RESPONSES_STORE_MAX_ENTRIES
RESPONSES_STORE_MAX_BYTES = _cfg.RESPONSES_STORE_MAX_BYTES
RESPONSES_STORE_TTL = _cfg.RESPONSES_STORE_TTL

# --- Operations -------------------------------------------------------------------------------

# JSON {"<cluster>": "<notice>"}: the cluster's requests answer 503 with the notice.
MAINTENANCE_ERROR_NOTICES: dict[str, Any] = dict(_cfg.MAINTENANCE_ERROR_NOTICES)
# JSON {"<old endpoint slug>": "<new endpoint slug>"}: requests for a renamed model (same cluster
# and framework) reach the new endpoint, which receives its own model name.
LEGACY_ENDPOINT_SLUG_MAPPING: dict[str, Any] = dict(_cfg.LEGACY_ENDPOINT_SLUG_MAPPING)
# GET /resource_server/ready: seconds an answer is reused, and the longest wait for the
# database or Redis before it counts as down.
READY_CACHE_SECONDS = _cfg.READY_CACHE_SECONDS
READY_TIMEOUT_SECONDS = _cfg.READY_TIMEOUT_SECONDS

# --- Admission limits (docs/limits.md) ---------------------------------------------------------

# The period of the per-minute limits (rpm_*, tpm_*), in seconds: a full bucket refills in it.
LIMITS_WINDOW_SECONDS = _cfg.LIMITS_WINDOW_SECONDS
# Gateway-wide limits for endpoints whose own field is 0 (0 here = unlimited).
LIMITS_DEFAULT_RPM_USER = _cfg.LIMITS_DEFAULT_RPM_USER
LIMITS_DEFAULT_TPM_USER = _cfg.LIMITS_DEFAULT_TPM_USER
LIMITS_DEFAULT_MAX_CONCURRENT_USER = _cfg.LIMITS_DEFAULT_MAX_CONCURRENT_USER
LIMITS_DEFAULT_RPM_MODEL = _cfg.LIMITS_DEFAULT_RPM_MODEL
LIMITS_DEFAULT_TPM_MODEL = _cfg.LIMITS_DEFAULT_TPM_MODEL
# Completion tokens reserved for a request that names no max_tokens (corrected at its end).
LIMITS_RESERVE_COMPLETION_TOKENS = _cfg.LIMITS_RESERVE_COMPLETION_TOKENS
# With REDIS_URL, when Redis does not answer: "open" admits (a warning, at most once a minute),
# "closed" answers 503 limits_unavailable. Seconds to wait for Redis per decision.
LIMITS_REDIS_FAILURE = _cfg.LIMITS_REDIS_FAILURE
LIMITS_REDIS_TIMEOUT = _cfg.LIMITS_REDIS_TIMEOUT
# Admission's Redis calls waiting for their reply, per worker process (one pipelined
# connection); past it a decision fails at once, as when Redis is down (LIMITS_REDIS_FAILURE).
LIMITS_REDIS_MAX_PENDING = _cfg.LIMITS_REDIS_MAX_PENDING
# Prefix of the limiter's Redis keys (two gateways sharing one Redis keep apart by it).
LIMITS_REDIS_PREFIX = _cfg.LIMITS_REDIS_PREFIX
# Without Redis: limit states kept per process (least recently used forgotten first).
LIMITS_MEMORY_MAX_KEYS = _cfg.LIMITS_MEMORY_MAX_KEYS
# A concurrency slot whose request never released it (a worker that died) frees itself then.
LIMITS_SLOT_LEASE_SECONDS = _cfg.LIMITS_SLOT_LEASE_SECONDS
# Allocations: seconds between rebuilds of what each allocation spent from the request records
# (a Redis restart, other workers without Redis); a new period's or a lost count's sooner.
ALLOCATIONS_RECONCILE_SECONDS = _cfg.ALLOCATIONS_RECONCILE_SECONDS
# Prefix of the allocations' Redis keys (one hash per allocation and period).
ALLOCATIONS_REDIS_PREFIX = _cfg.ALLOCATIONS_REDIS_PREFIX

# --- Fair share: endpoint capacity and its queue (docs/limits.md#fair-share) -------------------

# How long a request may wait for a slot on an endpoint at its max_concurrent (503 queue_timeout).
FAIR_SHARE_QUEUE_TIMEOUT_SECONDS = _cfg.FAIR_SHARE_QUEUE_TIMEOUT_SECONDS
# Requests that may wait per endpoint, and per project on one endpoint (503 queue_full beyond).
FAIR_SHARE_MAX_QUEUED = _cfg.FAIR_SHARE_MAX_QUEUED
FAIR_SHARE_MAX_QUEUED_PER_PROJECT = _cfg.FAIR_SHARE_MAX_QUEUED_PER_PROJECT
# A slot given back by a project below its share, with nothing waiting while others wait, is
# kept this long for the project's next request (anticipation; 0 = off). Measured in the
# noisy-neighbour test: without it a one-at-a-time user waits a whole service time each time.
FAIR_SHARE_GRACE_SECONDS = _cfg.FAIR_SHARE_GRACE_SECONDS

# --- Accounting: request records (docs/accounting.md) -----------------------------------------

# Off: no record is written at all (the benchmark's comparison; metrics still count).
RECORDS_ENABLED = _cfg.RECORDS_ENABLED
# Records waiting for the database, in memory, per process; past it they go to the spool file.
RECORD_QUEUE_SIZE = _cfg.RECORD_QUEUE_SIZE
# Records per insert (one multi-row INSERT each).
RECORD_BATCH_SIZE = _cfg.RECORD_BATCH_SIZE
# While the database is down: seconds between attempts.
RECORD_RETRY_SECONDS = _cfg.RECORD_RETRY_SECONDS
# Spool files (records kept on disk while the database is down), per process; past it, dropped.
RECORD_SPOOL_DIR = Path(_cfg.RECORD_SPOOL_DIR or DATA_DIR / "record-spool")
RECORD_SPOOL_MAX_BYTES = _cfg.RECORD_SPOOL_MAX_BYTES
# At shutdown: seconds to write what is queued before spooling the rest.
RECORD_SHUTDOWN_SECONDS = _cfg.RECORD_SHUTDOWN_SECONDS
# Prompts and answers are stored only when on; each cut to this many characters.
RECORD_PROMPTS = _cfg.RECORD_PROMPTS
RECORD_PROMPT_MAX_CHARS = _cfg.RECORD_PROMPT_MAX_CHARS
# `purge_records` deletes records older than this (days; 0 keeps them forever).
RECORD_RETENTION_DAYS = _cfg.RECORD_RETENTION_DAYS
# `purge_records` deletes the hourly roll-up older than this (days; 0 keeps it forever).
ROLLUP_RETENTION_DAYS = _cfg.ROLLUP_RETENTION_DAYS
# Peers whose X-Forwarded-For is believed for the recorded client address (nginx's address).
TRUSTED_PROXY_NETWORKS = _cfg.TRUSTED_PROXY_NETWORKS

# --- Metrics and usage (docs/accounting.md) ---------------------------------------------------

# Off: no series are kept and GET /metrics answers 404 (for measuring their cost).
METRICS_ENABLED = _cfg.METRICS_ENABLED
# GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` when set, and a client address in
# METRICS_ALLOWED_NETWORKS when set (both when both are set); with neither, it answers 404
# outside development mode.
METRICS_TOKEN = _cfg.METRICS_TOKEN
METRICS_ALLOWED_NETWORKS = _cfg.METRICS_ALLOWED_NETWORKS
# Where the worker processes keep their metric values (one subdirectory per server start).
METRICS_DIR = Path(_cfg.METRICS_DIR or DATA_DIR / "metrics")
# GET /resource_server/v1/usage: the window when none is asked for (days, ending today), and
# the longest window one request may ask for (days).
USAGE_DEFAULT_DAYS = _cfg.USAGE_DEFAULT_DAYS
USAGE_MAX_DAYS = _cfg.USAGE_MAX_DAYS
# Most rows (groups of model x day, or of the `by` key) one usage answer holds; beyond, 400.
USAGE_MAX_ROWS = _cfg.USAGE_MAX_ROWS
# Usage queries waiting for the usage thread (per worker); more answer 503 usage_busy.
USAGE_MAX_PENDING = _cfg.USAGE_MAX_PENDING

# --- Batches: files, batches, the batch worker (docs/batches.md) ------------------------------

# One file per upload or output; never in the database.
BATCH_STORAGE_DIR = Path(_cfg.BATCH_STORAGE_DIR or DATA_DIR / "batch-files")
# One upload: bytes and lines at most (OpenAI's own limits: 200 MB, 50,000 requests).
BATCH_FILE_MAX_BYTES = _cfg.BATCH_FILE_MAX_BYTES
BATCH_FILE_MAX_LINES = _cfg.BATCH_FILE_MAX_LINES
# Per principal: bytes and number of files stored (inputs and outputs together).
BATCH_QUOTA_BYTES = _cfg.BATCH_QUOTA_BYTES
BATCH_QUOTA_FILES = _cfg.BATCH_QUOTA_FILES
# Batches per principal not yet finished (both APIs; the reference gateway's name).
MAX_BATCHES_PER_USER = _cfg.MAX_BATCHES_PER_USER
# The worker: lines in flight per endpoint, and in all.
BATCH_CONCURRENCY_PER_ENDPOINT = _cfg.BATCH_CONCURRENCY_PER_ENDPOINT
BATCH_MAX_IN_FLIGHT = _cfg.BATCH_MAX_IN_FLIGHT
# A worker's claim on a batch lasts this long unless renewed (a crashed worker's expires).
BATCH_CLAIM_SECONDS = _cfg.BATCH_CLAIM_SECONDS
# Seconds between looks for work while idle.
BATCH_POLL_SECONDS = _cfg.BATCH_POLL_SECONDS
# The reference gateway's cluster batch route: JSON {"cluster": ["/root", ...]}; a batch's paths
# must lie inside one of its cluster's roots (none: the cluster takes no batches).
BATCH_CLUSTER_ROOTS: dict[str, Any] = dict(_cfg.BATCH_CLUSTER_ROOTS)
# How long the worker waits for a cluster batch's function before the batch fails (s).
BATCH_TASK_TIMEOUT_SECONDS = _cfg.BATCH_TASK_TIMEOUT_SECONDS

# --- Operator dashboard (docs/dashboard.md) -------------------------------------------------------

DASHBOARD_OPERATOR_GROUPS = _cfg.DASHBOARD_OPERATOR_GROUPS
DASHBOARD_CACHE_SECONDS = _cfg.DASHBOARD_CACHE_SECONDS
DASHBOARD_TOP_ROWS = _cfg.DASHBOARD_TOP_ROWS
DASHBOARD_RECENT_ROWS = _cfg.DASHBOARD_RECENT_ROWS
DASHBOARD_REFRESH_SECONDS = _cfg.DASHBOARD_REFRESH_SECONDS
DASHBOARD_GLOBUS_SESSION_SECONDS = _cfg.DASHBOARD_GLOBUS_SESSION_SECONDS
