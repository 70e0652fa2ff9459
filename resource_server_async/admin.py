"""Django admin for clusters, endpoints and API keys, with the same validation as loaddata."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from resource_server_async.models import (
    Allocation,
    ApiKey,
    Batch,
    BatchFile,
    Cluster,
    Endpoint,
    LimitOverride,
    MaintenanceWindow,
    Project,
)


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = [
        "cluster_name",
        "cluster_adapter",
        "frameworks",
        "openai_endpoints",
        "updated_at",
    ]
    search_fields = ["cluster_name"]
    readonly_fields = ["updated_at"]


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = [
        "endpoint_slug",
        "cluster",
        "framework",
        "model",
        "endpoint_adapter",
        "updated_at",
    ]
    list_filter = ["cluster", "framework"]
    search_fields = ["endpoint_slug", "model"]
    readonly_fields = ["updated_at"]
    fieldsets = [
        (None, {"fields": ["endpoint_slug", "cluster", "framework", "model", "endpoint_adapter"]}),
        ("Access", {"fields": ["allowed_globus_groups", "allowed_domains"]}),
        ("Configuration", {"fields": ["config"]}),
        (
            "Limits (docs/limits.md; 0 = the gateway default, which is unlimited unless set)",
            {
                "fields": [
                    "rpm_user",
                    "tpm_user",
                    "max_concurrent_user",
                    "rpm_model",
                    "tpm_model",
                    "max_concurrent",
                    "updated_at",
                ]
            },
        ),
    ]


@admin.register(LimitOverride)
class LimitOverrideAdmin(admin.ModelAdmin):
    """A key's or a group's own per-user limits (admission/limits.py), seen within a second."""

    list_display = ["__str__", "rpm_user", "tpm_user", "max_concurrent_user", "note", "updated_at"]
    search_fields = ["globus_group", "api_key__name", "note"]
    raw_id_fields = ["api_key"]
    readonly_fields = ["updated_at"]


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("active", "active"), ("expired", "expired"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        now = timezone.now()
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        return queryset


class PersonalKeyFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("personal", "personal (a researcher's)"), ("operator", "issued by an operator")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() == "personal":
            return queryset.exclude(owner_id="")
        if self.value() == "operator":
            return queryset.filter(owner_id="")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Lists and revokes keys; keys are created with `manage.py create_api_key` (shown once)."""

    list_display = [
        "name",
        "prefix",
        "status",
        "owner_username",
        "checksummed",
        "groups",
        "domain",
        "operator",
        "default_project",
        "created_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [ApiKeyStatusFilter, "operator", PersonalKeyFilter]
    search_fields = ["name", "prefix", "owner_username", "owner_id"]
    readonly_fields = ["prefix", "owner_username", "owner_id", "created_at", "revoked_at"]
    fields = [
        "name",
        "prefix",
        "owner_username",
        "owner_id",
        "scope_models",
        "scope_clusters",
        "groups",
        "domain",
        "operator",
        "created_at",
        "expires_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A key is shown only once at creation, which the admin form cannot do safely.
        return False

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        return "active" if obj.is_active else "expired"

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        # A personal key's stored Globus grant is of no further use once revoked.
        count = queryset.filter(revoked_at__isnull=True).update(
            revoked_at=timezone.now(), owner_groups_token=""
        )
        self.message_user(
            request,
            f"Revoked {count} key(s). They stop working within API_KEY_CACHE_SECONDS.",
            messages.SUCCESS,
        )


class AllocationInline(admin.TabularInline):
    model = Allocation
    extra = 0
    fields = ["name", "period", "start_day", "tokens", "gpu_seconds", "model", "cluster"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "title", "globus_group", "weight", "order", "updated_at"]
    search_fields = ["name", "title", "globus_group"]
    filter_horizontal = ["api_keys"]
    fields = ["name", "title", "globus_group", "api_keys", "weight", "order"]
    inlines = [AllocationInline]


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "project",
        "period",
        "start_day",
        "tokens",
        "gpu_seconds",
        "model",
        "cluster",
        "updated_at",
    ]
    list_filter = ["period", "project"]
    search_fields = ["name", "project__name", "model", "cluster"]
    fields = ["name", "project", "period", "start_day", "tokens", "gpu_seconds", "model", "cluster"]


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    """Windows as rows: every worker picks a change up within CATALOG_REFRESH_SECONDS."""

    list_display = ["cluster", "framework", "endpoint_slug", "starts_at", "ends_at", "message"]
    list_filter = ["cluster"]
    search_fields = ["cluster", "endpoint_slug", "message"]
    date_hierarchy = "starts_at"
    actions = ["end_now"]

    @admin.action(description="End the selected windows now")
    def end_now(self, request: HttpRequest, queryset: QuerySet[MaintenanceWindow]) -> None:
        now = timezone.now()
        ended = 0
        for window in queryset.filter(starts_at__lte=now).exclude(ends_at__lte=now):
            # Saved one by one: each save bumps the catalog's version. An end must follow the start.
            window.ends_at = max(now, window.starts_at + timedelta(microseconds=1))
            window.save(update_fields=["ends_at"])
            ended += 1
        self.message_user(request, f"Ended {ended} window(s).", messages.SUCCESS)


@admin.register(BatchFile)
class BatchFileAdmin(admin.ModelAdmin):
    list_display = ["id", "principal_id", "purpose", "filename", "bytes", "lines", "created_at"]
    list_filter = ["purpose"]
    search_fields = ["id", "principal_id", "filename"]
    readonly_fields = ["id", "principal_id", "purpose", "bytes", "lines", "urls", "created_at"]


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    """Read-only: the worker owns a batch's state (cancel through the API)."""

    list_display = ["id", "principal_id", "endpoint", "status", "total", "completed", "failed"]
    list_filter = ["status", "endpoint"]
    search_fields = ["id", "principal_id", "input_file_id"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
