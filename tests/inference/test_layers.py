"""The layering rule of docs/architecture.md: imports run downward only. Nothing below the API
imports `api/`, and nothing below the inference path imports `inference/` (function-level
imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import resource_server_async

PACKAGE = Path(resource_server_async.__file__).parent
API = "resource_server_async.api"
INFERENCE = "resource_server_async.inference"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _upward_imports(folder_excluded: tuple[str, ...], above: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in folder_excluded:
            continue
        for name in sorted(_imported_modules(path)):
            if any(_under(name, package) for package in above):
                found.append(f"{relative}: {name}")
    return found


def test_inference_imports_nothing_from_the_api() -> None:
    inference_files = list((PACKAGE / "inference").rglob("*.py"))
    assert inference_files  # the folder this test guards exists
    upward = [
        f"{path.name}: {name}"
        for path in inference_files
        for name in sorted(_imported_modules(path))
        if _under(name, API)
    ]

    assert upward == []


def test_nothing_below_imports_the_api_or_the_inference_path() -> None:
    # batches/ is a client of the inference path beside the API (its worker sends lines
    # through it), so it may import inference/, never api/.
    assert _upward_imports(("api", "inference", "batches"), (API, INFERENCE)) == []
    assert _upward_imports(("api",), (API,)) == []
