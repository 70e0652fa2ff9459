"""Paths a caller names on a cluster's filesystem, confined to the roots the operator gave it.

The batch function runs under the service identity, which may read and write far more than the
caller: a path is accepted only inside one of the cluster's BATCH_CLUSTER_ROOTS, written
without `..`, and (where the gateway sees that filesystem) still inside once symlinks are
resolved. A relative path is taken from the cluster's first root.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from resource_server_async.errors import GatewayError


def _refuse(param: str, message: str) -> GatewayError:
    return GatewayError(400, "path_not_allowed", message, param=param)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def confine(raw: object, roots: list[str], param: str) -> str:
    """The path as an absolute, normalized string inside one of `roots`; 400 otherwise."""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise _refuse(param, f"{param} must be a path on the cluster's filesystem.")
    if not roots:
        raise GatewayError(
            404,
            "batches_not_offered",
            "This cluster takes no batches (no BATCH_CLUSTER_ROOTS for it).",
        )
    given = PurePosixPath(raw)
    if ".." in given.parts:
        raise _refuse(param, f"{param} must not contain '..'.")
    path = given if given.is_absolute() else PurePosixPath(roots[0]) / given
    normal = os.path.normpath(str(path))
    root = next((r for r in roots if _inside(normal, os.path.normpath(r))), None)
    if root is None:
        raise _refuse(
            param,
            f"{param} {raw!r} is outside the batch folders of this cluster: {', '.join(roots)}.",
        )
    real_root = os.path.realpath(root)
    if os.path.exists(real_root) and not _inside(os.path.realpath(normal), real_root):
        raise _refuse(param, f"{param} {raw!r} leads outside {root} through a symbolic link.")
    return normal
