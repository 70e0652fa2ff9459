"""The part of the program a source file belongs to, for profiles summed by part (the open
streams' memory by allocating file, bench/cpu_profile.py's CPU by function)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
C_CODE = "C functions (builtins, methods)"


def part_of(filename: str) -> str:
    """A package, one of our modules (its path), asyncio, a stdlib module, or C code (which
    cProfile names without a file)."""
    if filename == "~" or filename.startswith("<"):
        return C_CODE
    path = Path(filename)
    if "site-packages" in path.parts:
        return path.parts[path.parts.index("site-packages") + 1].removesuffix(".py")
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return "asyncio" if path.parent.name == "asyncio" else f"stdlib {path.name}"


def source_of(filename: str) -> str | None:
    """A function's file as the reader finds it: inside site-packages, ours, or the stdlib's;
    None for C code."""
    if filename == "~" or filename.startswith("<"):
        return None
    path = Path(filename)
    if "site-packages" in path.parts:
        return "/".join(path.parts[path.parts.index("site-packages") + 1 :])
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return "/".join(path.parts[-2:])
