"""OpenAI's Files and Batches API under /resource_server/v1/ (docs/batches.md).

The views authenticate, read, and hand the database work to a thread; the batch worker
(`manage.py batch_worker`) runs the lines.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route
from starlette.types import Message

from resource_server_async.api.http import JSONResponse, read_json_object
from resource_server_async.auth.authenticate import authenticate
from resource_server_async.auth.principal import Principal
from resource_server_async.batches import batch_store, files, storage
from resource_server_async.batches.database import in_thread
from resource_server_async.batches.input_lines import SERVED_URLS
from resource_server_async.errors import GatewayError
from resource_server_async.inference.visibility import usable_models

# Room for the multipart framing and the `purpose` field around the file's own bytes.
_FORM_OVERHEAD = 64 * 1024
_DEFAULT_PAGE, _MAX_PAGE = 20, 100


def _too_large() -> GatewayError:
    return GatewayError(
        413,
        "file_too_large",
        f"The file is larger than {settings.BATCH_FILE_MAX_BYTES} bytes (BATCH_FILE_MAX_BYTES).",
        param="file",
    )


def _bounded(request: Request, limit: int) -> Request:
    """The same request, whose body stops with a 413 past `limit` bytes, chunked or not."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large()
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise _too_large()
        return message

    return Request(request.scope, receive)


def _models_by_operation(principal: Principal) -> dict[str, frozenset[str]]:
    return {
        operation: frozenset(m.lower() for m in usable_models(principal, operation=operation))
        for operation in SERVED_URLS.values()
    }


def _page_parameters(request: Request) -> tuple[str, int]:
    raw = request.query_params.get("limit", str(_DEFAULT_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_PAGE:
        raise GatewayError(400, "invalid_limit", f"limit must be 1 to {_MAX_PAGE}.", param="limit")
    return request.query_params.get("after", ""), int(raw)


async def create_file(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    bounded = _bounded(request, settings.BATCH_FILE_MAX_BYTES + _FORM_OVERHEAD)
    # python-multipart spools a file part to disk past 1 MB: the upload is never all in memory.
    async with bounded.form(max_files=1, max_fields=4) as form:
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose != "batch":
            raise GatewayError(400, "invalid_purpose", "purpose must be 'batch'.", param="purpose")
        if not isinstance(upload, UploadFile):
            raise GatewayError(
                400, "missing_required_parameter", "A file part is required.", param="file"
            )
        if upload.size is not None and upload.size > settings.BATCH_FILE_MAX_BYTES:
            raise _too_large()
        models = _models_by_operation(principal)
        await upload.seek(0)
        created = await in_thread(
            files.store_upload,
            principal.id,
            upload.filename or "upload.jsonl",
            upload.file,
            models.__getitem__,
        )
    return JSONResponse(created)


async def list_files(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    after, limit = _page_parameters(request)
    purpose = request.query_params.get("purpose", "")
    return JSONResponse(await in_thread(files.listing, principal.id, purpose, after, limit))


async def retrieve_file(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    return JSONResponse(
        await in_thread(files.describe, principal.id, request.path_params["file_id"])
    )


async def delete_file(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    return JSONResponse(await in_thread(files.delete, principal.id, request.path_params["file_id"]))


async def file_content(request: Request) -> FileResponse:
    principal = await authenticate(request)
    file = await in_thread(files.own_file, principal.id, request.path_params["file_id"])
    # Sent from disk in chunks by Starlette.
    return FileResponse(
        storage.path_of(file.id), media_type="application/jsonl", filename=file.filename
    )


async def create_batch(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    body, _ = await read_json_object(request)
    return JSONResponse(await in_thread(batch_store.create, principal, body))


async def list_batches(request: Request) -> JSONResponse:
    """A cursor page of the Batches API; with `status`, the reference gateway's list of
    cluster batches in that status (its route and parameter)."""
    principal = await authenticate(request)
    if "status" in request.query_params:
        state = request.query_params["status"]
        return JSONResponse(await in_thread(batch_store.cluster_listing, principal.id, state))
    after, limit = _page_parameters(request)
    return JSONResponse(await in_thread(batch_store.listing, principal.id, after, limit))


async def retrieve_batch(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    batch_id: Any = request.path_params["batch_id"]
    return JSONResponse(await in_thread(batch_store.describe, principal.id, batch_id))


async def cancel_batch(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    batch_id: Any = request.path_params["batch_id"]
    return JSONResponse(await in_thread(batch_store.cancel, principal.id, batch_id))


_V1 = "/resource_server/v1"
routes = [
    Route(f"{_V1}/files", create_file, methods=["POST"]),
    Route(f"{_V1}/files", list_files, methods=["GET"]),
    Route(f"{_V1}/files/{{file_id}}", retrieve_file, methods=["GET"]),
    Route(f"{_V1}/files/{{file_id}}", delete_file, methods=["DELETE"]),
    Route(f"{_V1}/files/{{file_id}}/content", file_content, methods=["GET"]),
    Route(f"{_V1}/batches", create_batch, methods=["POST"]),
    Route(f"{_V1}/batches", list_batches, methods=["GET"]),
    Route(f"{_V1}/batches/{{batch_id}}", retrieve_batch, methods=["GET"]),
    Route(f"{_V1}/batches/{{batch_id}}/cancel", cancel_batch, methods=["POST"]),
]
