"""Clusters and endpoints, in the fixture format of existing deployments (CONTRACT.md §1)."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from resource_server_async.catalog.fields import ConfigField, StringListField
from resource_server_async.catalog.validation import (
    Problem,
    raise_for_problems,
    validate_cluster,
    validate_endpoint,
    validate_endpoint_references,
)


class Cluster(models.Model):
    """A compute resource (an HPC cluster or a set of directly reachable servers)."""

    cluster_name = models.CharField(max_length=100, unique=True)
    cluster_adapter = models.CharField(max_length=250)
    frameworks = StringListField(default=list, blank=True)
    openai_endpoints = StringListField(default=list, blank=True)
    allowed_globus_groups = StringListField(default=list, blank=True)
    allowed_domains = StringListField(default=list, blank=True)
    config = ConfigField(default=dict, blank=True)
    # Set on every save, loaddata included (see signals), so that workers notice changes.
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["cluster_name"]

    def __str__(self) -> str:
        return self.cluster_name

    def as_fields(self) -> dict[str, Any]:
        return {
            "cluster_name": self.cluster_name,
            "cluster_adapter": self.cluster_adapter,
            "frameworks": self.frameworks,
            "openai_endpoints": self.openai_endpoints,
            "allowed_globus_groups": self.allowed_globus_groups,
            "allowed_domains": self.allowed_domains,
            "config": self.config,
        }

    def clean(self) -> None:
        raise_for_problems(validate_cluster(self.as_fields(), f"cluster {self.cluster_name!r}"))


class Endpoint(models.Model):
    """One model served by one framework on one cluster, reached through an endpoint adapter."""

    endpoint_slug = models.SlugField(max_length=250, unique=True)
    cluster = models.CharField(max_length=100, db_index=True)
    framework = models.CharField(max_length=100)
    model = models.CharField(max_length=250)
    endpoint_adapter = models.CharField(max_length=250)
    allowed_globus_groups = StringListField(default=list, blank=True)
    allowed_domains = StringListField(default=list, blank=True)
    config = ConfigField(default=dict, blank=True)
    # Admission limits (docs/limits.md): per minute (LIMITS_WINDOW_SECONDS), per principal
    # ("_user") or for everyone together ("_model"); 0 = the gateway default (0 = unlimited).
    tpm_model = models.PositiveIntegerField(default=0)
    tpm_user = models.PositiveIntegerField(default=0)
    rpm_model = models.PositiveIntegerField(default=0)
    rpm_user = models.PositiveIntegerField(default=0)
    max_concurrent_user = models.PositiveIntegerField(default=0)
    # Capacity of the model server (docs/limits.md, fair share): requests in flight from all
    # gateway workers together; past it requests wait in a weighted fair queue. 0 = no queue.
    max_concurrent = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["cluster", "framework", "model"]

    def __str__(self) -> str:
        return self.endpoint_slug

    def as_fields(self) -> dict[str, Any]:
        return {
            "endpoint_slug": self.endpoint_slug,
            "cluster": self.cluster,
            "framework": self.framework,
            "model": self.model,
            "endpoint_adapter": self.endpoint_adapter,
            "allowed_globus_groups": self.allowed_globus_groups,
            "allowed_domains": self.allowed_domains,
            "config": self.config,
            "tpm_model": self.tpm_model,
            "tpm_user": self.tpm_user,
            "rpm_model": self.rpm_model,
            "rpm_user": self.rpm_user,
            "max_concurrent_user": self.max_concurrent_user,
            "max_concurrent": self.max_concurrent,
        }

    def clean(self) -> None:
        label = f"endpoint {self.endpoint_slug!r}"
        problems = validate_endpoint(self.as_fields(), label)
        clusters = {
            c.cluster_name: c.as_fields() for c in Cluster.objects.filter(cluster_name=self.cluster)
        }
        problems += validate_endpoint_references(self.as_fields(), label, clusters)
        raise_for_problems(problems)


class ApiKey(models.Model):
    """A key the gateway issues itself; only its SHA-256 is stored."""

    name = models.CharField(max_length=150, help_text="who or what uses this key")
    # The first characters of the key, shown to operators to tell keys apart.
    prefix = models.CharField(max_length=24, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    # Keys issued before the checksum format are accepted only while API_KEY_ACCEPT_LEGACY is on.
    checksummed = models.BooleanField(
        default=False, editable=False, help_text="the key carries a checksum (current format)"
    )
    groups = StringListField(
        default=list, blank=True, help_text="Globus group ids this key acts in"
    )
    domain = models.CharField(
        max_length=150,
        blank=True,
        default="",
        help_text="identity-provider domain the key counts as (for allowed_domains)",
    )
    # The operator scope: GET /v1/usage for any principal, group, cluster or model.
    operator = models.BooleanField(
        default=False, help_text="may read the usage of every principal (GET /v1/usage)"
    )
    # The project a request with this key is charged to when it names none (x-project).
    default_project = models.ForeignKey(
        "Project", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # A personal key (POST /resource_server/v1/keys) acts as its owner, a Globus identity;
    # operator keys (create_api_key) have no owner.
    owner_id = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_index=True,
        editable=False,
        help_text="Globus identity id of the researcher who created this personal key",
    )
    owner_username = models.CharField(max_length=255, blank=True, default="", editable=False)
    owner_name = models.CharField(max_length=255, blank=True, default="", editable=False)
    # The owner's Groups refresh token (a dependent token), encrypted: how the gateway re-checks
    # the owner's memberships without the owner's own token (auth/key_owners.py).
    owner_groups_token = models.TextField(blank=True, default="", editable=False)
    # Optional narrower scope of a personal key; empty = whatever its owner may use.
    scope_models = StringListField(default=list, blank=True, help_text="models this key may use")
    scope_clusters = StringListField(
        default=list, blank=True, help_text="clusters this key may use"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_personal(self) -> bool:
        return bool(self.owner_id)

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class LimitOverride(models.Model):
    """A principal's own per-user limits, in place of the endpoint's (docs/limits.md): for one
    API key, or for the members of one Globus group. Empty = keep the endpoint's limit."""

    api_key = models.OneToOneField(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="limits"
    )
    globus_group = models.CharField(
        max_length=64, blank=True, default="", help_text="a Globus group id (or leave empty)"
    )
    rpm_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="requests per minute on each endpoint; 0 = unlimited"
    )
    tpm_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="tokens per minute on each endpoint; 0 = unlimited"
    )
    max_concurrent_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="requests in flight on each endpoint; 0 = unlimited"
    )
    note = models.CharField(max_length=250, blank=True, default="")
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["globus_group"],
                condition=~models.Q(globus_group=""),
                name="limit_override_group_unique",
            ),
            models.CheckConstraint(
                condition=(models.Q(api_key__isnull=False) & models.Q(globus_group=""))
                | (models.Q(api_key__isnull=True) & ~models.Q(globus_group="")),
                name="limit_override_one_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"limits of {self.api_key or 'group ' + self.globus_group}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.updated_at = timezone.now()  # the catalog's fingerprint notices the change
        super().save(*args, **kwargs)


class Project(models.Model):
    """A research project: the principals that share an allocation (budget) and a fair share of
    busy endpoints. Members are a Globus group's members and/or a set of API keys."""

    name = models.SlugField(max_length=100, unique=True, help_text="short name, as in x-project")
    title = models.CharField(max_length=250, blank=True, default="")
    globus_group = models.CharField(
        max_length=64, blank=True, default="", help_text="members: this Globus group (id)"
    )
    api_keys = models.ManyToManyField(
        ApiKey, blank=True, related_name="projects", help_text="members: these API keys"
    )
    # Fair share (docs/limits.md): a project's share of a full endpoint, relative to the others.
    weight = models.PositiveIntegerField(default=1, help_text="fair-share weight (1 = equal)")
    # A principal in several projects that names none is charged to the first by (order, name).
    order = models.PositiveIntegerField(default=100, help_text="lower comes first")
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.updated_at = timezone.now()  # the catalog's fingerprint notices the change
        super().save(*args, **kwargs)


class RequestRecord(models.Model):
    """One inference request as accounted (accounting/): who, what, where, how long, tokens.

    Written in batches by accounting.writer; `request_key` makes a batch written twice (an
    insert that committed but whose answer was lost) insert each record once.
    """

    # request_id plus received_at (µs): the client chooses request_id, so it alone is not unique.
    request_key = models.CharField(max_length=160, unique=True)
    request_id = models.CharField(max_length=128)
    received_at = models.DateTimeField(db_index=True)
    route = models.CharField(max_length=16)
    operation = models.CharField(max_length=32)
    client_address = models.CharField(max_length=64, blank=True, default="")
    principal_id = models.CharField(max_length=128, blank=True, default="")
    username = models.CharField(max_length=250, blank=True, default="")
    idp_domain = models.CharField(max_length=150, blank=True, default="")
    credential = models.CharField(max_length=16, blank=True, default="")
    api_key_id = models.BigIntegerField(null=True, blank=True)
    groups = StringListField(default=list, blank=True)
    project = models.CharField(max_length=100, blank=True, default="", help_text="charged to")
    cluster = models.CharField(max_length=100, blank=True, default="")
    framework = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=250, blank=True, default="")
    endpoint_slug = models.CharField(max_length=250, blank=True, default="")
    stream = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True, default="")
    duration = models.FloatField(null=True, blank=True, help_text="seconds, receipt to end")
    upstream_duration = models.FloatField(
        null=True, blank=True, help_text="seconds, call to the model server to end"
    )
    time_to_first_token = models.FloatField(
        null=True, blank=True, help_text="seconds, receipt to the server's first byte"
    )
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True)
    usage_estimated = models.BooleanField(default=False)
    compute_task_id = models.CharField(max_length=64, blank=True, default="")
    response_time = models.FloatField(null=True, blank=True)
    throughput_tokens_per_second = models.FloatField(null=True, blank=True)
    disconnected = models.BooleanField(default=False)
    # Only when RECORD_PROMPTS is on.
    prompt = models.TextField(blank=True, default="")
    answer = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["principal_id", "received_at"], name="record_principal_time"),
            models.Index(fields=["model", "received_at"], name="record_model_time"),
            models.Index(fields=["cluster", "received_at"], name="record_cluster_time"),
            models.Index(fields=["project", "received_at"], name="record_project_time"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.operation} {self.status}"


# Dimensions of a UsageHour row: its unique key with `hour` (accounting/rollup.py upserts on it).
USAGE_DIMENSIONS = (
    "cluster", "framework", "model", "endpoint_slug", "principal_id", "username", "project",
    "status", "error_code",
)  # fmt: skip


class UsageSums(models.Model):
    """Request records summed per period and (cluster, model, principal, project, status, ...):
    what the dashboard's day and month ranges read instead of every record.

    Kept by the record writer in the statement that inserts the records (accounting/rollup.py),
    so it always agrees with them; outlives them by ROLLUP_RETENTION_DAYS (purge_records).
    """

    cluster = models.CharField(max_length=100, blank=True, default="")
    framework = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=250, blank=True, default="")
    endpoint_slug = models.CharField(max_length=250, blank=True, default="")
    principal_id = models.CharField(max_length=128, blank=True, default="")
    username = models.CharField(max_length=250, blank=True, default="")
    project = models.CharField(max_length=100, blank=True, default="")
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True, default="")
    request_count = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    # Sums and counts of the records that have one: means stay exact.
    duration_sum = models.FloatField(default=0.0)
    duration_count = models.BigIntegerField(default=0)
    ttft_sum = models.FloatField(default=0.0)
    ttft_count = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class UsageHour(UsageSums):
    """The records of each hour summed (the dashboard's last day)."""

    # Ranges of hours use the unique key's index, which starts with the hour.
    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", *USAGE_DIMENSIONS], name="usage_hour_key")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.model} {self.username} {self.status}"


class UsageDay(UsageSums):
    """The records of each UTC day summed (the dashboard's 30 days): ~24 times fewer rows than
    UsageHour, which took ~370 ms over 30 days for the overview with 1,000,000 records."""

    day = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", *USAGE_DIMENSIONS], name="usage_day_key")
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.model} {self.username} {self.status}"


class LatencyHour(models.Model):
    """Records per hour and latency bin (accounting.rollup.LATENCY_BINS) of `measure`
    ("duration" or "time_to_first_token"): p50/p95 per bucket from bin counts, as on records."""

    hour = models.DateTimeField()
    measure = models.CharField(max_length=32)
    bin = models.PositiveSmallIntegerField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "measure", "bin"], name="latency_hour_key")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.measure} bin {self.bin}: {self.count}"


# --- Batches (docs/batches.md): file metadata, batches, per-line outcomes ---------------------


class BatchFile(models.Model):
    """An uploaded or produced JSONL file; its bytes are one file under BATCH_STORAGE_DIR."""

    id = models.CharField(primary_key=True, max_length=40)
    principal_id = models.CharField(max_length=128, db_index=True)
    purpose = models.CharField(max_length=32)  # "batch" (input), "batch_output"
    filename = models.CharField(max_length=255)
    bytes = models.BigIntegerField()
    lines = models.PositiveIntegerField(default=0)
    # The operations (`url` of the lines, e.g. "/v1/chat/completions") an input file uses.
    urls = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.id} {self.filename}"


class Batch(models.Model):
    """One batch: its status machine, progress, and the worker's expiring claim on it."""

    id = models.CharField(primary_key=True, max_length=40)
    principal_id = models.CharField(max_length=128, db_index=True)
    # Principal.as_dict() of the creator: the worker authorizes and accounts every line as them.
    principal = models.JSONField(default=dict)
    endpoint = models.CharField(max_length=64)  # "/v1/chat/completions"
    input_file_id = models.CharField(max_length=40)
    output_file_id = models.CharField(max_length=40, blank=True, default="")
    error_file_id = models.CharField(max_length=40, blank=True, default="")
    completion_window = models.CharField(max_length=16, default="24h")
    metadata = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, default="validating", db_index=True)
    errors = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    claimed_by = models.CharField(max_length=64, blank=True, default="")
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # "openai" (Files and Batches API, run line by line by the worker) or "cluster" (the
    # reference gateway's route: the batch function on the cluster, tracked by the worker).
    kind = models.CharField(max_length=16, default="openai")
    cluster = models.CharField(max_length=100, blank=True, default="")
    framework = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=250, blank=True, default="")
    # Cluster batches: paths on the cluster's filesystem (inside its BATCH_CLUSTER_ROOTS).
    input_path = models.CharField(max_length=4096, blank=True, default="")
    output_path = models.CharField(max_length=4096, blank=True, default="")
    task_ids = models.JSONField(default=list, blank=True)
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"{self.id} {self.status}"


class BatchLine(models.Model):
    """The outcome of one input line, stored as it arrives: a line with one is never resent."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="lines")
    line = models.PositiveIntegerField()  # 1-based line number in the input file
    ok = models.BooleanField()  # a 2xx answer: goes to the output file, else the error file
    output = models.TextField()  # the output (or error) file's JSON line, without newline

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "line"], name="batch_line_once"),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.line}"


def database_problems() -> list[Problem]:
    """Every problem of the clusters and endpoints already in the database."""
    clusters = {c.cluster_name: c.as_fields() for c in Cluster.objects.all()}
    problems: list[Problem] = []
    for name, fields in clusters.items():
        problems += validate_cluster(fields, f"cluster {name!r}")
    for endpoint in Endpoint.objects.all():
        fields = endpoint.as_fields()
        where = f"endpoint {endpoint.endpoint_slug!r}"
        problems += validate_endpoint(fields, where)
        problems += validate_endpoint_references(fields, where, clusters)
    return problems


class Allocation(models.Model):
    """A project's budget per period (docs/limits.md): tokens and/or GPU-seconds, on every
    endpoint or only one model and/or cluster. Spent is counted in admission (Redis) and
    rebuilt from the request records of the current period."""

    PERIODS = [("month", "month"), ("week", "week"), ("day", "day")]

    name = models.SlugField(max_length=100, unique=True, help_text="named in refusals")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="allocations")
    period = models.CharField(max_length=8, choices=PERIODS, default="month")
    # The day a period starts: of the month (1-28) or of the week (1 = Monday .. 7); UTC midnight.
    start_day = models.PositiveSmallIntegerField(
        default=1, help_text="month: day 1-28; week: 1 = Monday .. 7 = Sunday; day: unused"
    )
    tokens = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="tokens per period (prompt + completion); empty = none"
    )
    gpu_seconds = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="GPU-seconds per period (the Compute function's response_time); empty = none",
    )
    model = models.CharField(max_length=250, blank=True, default="", help_text="only this model")
    cluster = models.CharField(
        max_length=100, blank=True, default="", help_text="only this cluster"
    )
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["project__order", "project__name", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(tokens__isnull=False) | models.Q(gpu_seconds__isnull=False),
                name="allocation_has_a_budget",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.tokens is None and self.gpu_seconds is None:
            raise ValidationError("Give a token budget, a GPU-seconds budget, or both.")
        highest = {"month": 28, "week": 7, "day": 1}[self.period]
        if self.period != "day" and not 1 <= self.start_day <= highest:
            raise ValidationError({"start_day": f"A {self.period} starts on day 1 to {highest}."})

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.updated_at = timezone.now()  # the catalog's fingerprint notices the change
        super().save(*args, **kwargs)


class MaintenanceWindow(models.Model):
    """A time when a cluster (or one framework or endpoint of it) takes no requests
    (admission/maintenance.py): cluster-scoped requests answer 503 with the message and
    Retry-After until `ends_at`; federated ones go to another cluster."""

    cluster = models.CharField(max_length=100, db_index=True)
    framework = models.CharField(
        max_length=100, blank=True, default="", help_text="only this framework (empty = all)"
    )
    endpoint_slug = models.CharField(
        max_length=250, blank=True, default="", help_text="only this endpoint (empty = all)"
    )
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="empty = until switched off")
    message = models.CharField(
        max_length=500, blank=True, default="", help_text="what callers are told"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["cluster", "-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__isnull=True)
                | models.Q(ends_at__gt=models.F("starts_at")),
                name="maintenance_window_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        target = "/".join(p for p in (self.cluster, self.framework, self.endpoint_slug) if p)
        return f"maintenance of {target} from {self.starts_at:%Y-%m-%d %H:%M}"

    def notice(self) -> str:
        """The message, or a plain one: an empty message must not reopen the cluster."""
        if self.message.strip():
            return self.message
        return f"Cluster {self.cluster!r} is under maintenance."


class CatalogVersion(models.Model):
    """One row: the catalog's version counter (catalog/version.py)."""

    version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"catalog version {self.version}"
