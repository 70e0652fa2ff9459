"""What each `igw` subcommand does, given the parsed command line (cli.py builds the parser)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from igw import agents, errors, login, state
from igw.errors import CliError
from igw.gateway import API, Gateway


def out(text: str = "") -> None:
    print(text, flush=True)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def gateway_url(args: argparse.Namespace) -> str:
    url = (
        getattr(args, "gateway", None)
        or os.environ.get("IGW_GATEWAY")
        or state.load().get("gateway")
    )
    if not url:
        raise CliError(
            "Which gateway? Run `igw login --gateway https://...` once (or set IGW_GATEWAY).",
            errors.USAGE,
        )
    return state.normalize_url(url)


def connect(args: argparse.Namespace, login_only: bool = False) -> Gateway:
    """The gateway with the caller's credential: IGW_API_KEY if set, else the Globus login."""
    url = gateway_url(args)
    key = os.environ.get("IGW_API_KEY", "").strip()
    if key and not login_only:
        return Gateway(url, key, with_key=True)
    return Gateway(url, login.access_token(url))


def _table(rows: list[list[str]]) -> None:
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# --- login -----------------------------------------------------------------------------------


def cmd_login(args: argparse.Namespace) -> int:
    url = state.normalize_url(
        args.gateway or os.environ.get("IGW_GATEWAY") or state.load().get("gateway") or ""
    )
    if not url:
        raise CliError("Name the gateway once: igw login --gateway https://...", errors.USAGE)
    no_browser = args.no_browser or login.wants_no_browser()
    login.login(url, no_browser, args.client_id or "")
    me = Gateway(url, login.access_token(url)).json("GET", "/resource_server/whoami")
    note(f"Logged in to {url} as {me.get('username')} (tokens in {state.state_path()}).")
    return errors.OK


def cmd_logout(args: argparse.Namespace) -> int:
    url = gateway_url(args)
    was_in, revoked = login.logout(url)
    if not was_in:
        note(f"You were not logged in to {url}.")
    elif revoked:
        note(f"Logged out of {url}; the tokens were revoked at Globus.")
    else:
        note(f"Logged out of {url}; Globus could not be reached to revoke the tokens.")
    return errors.OK


def cmd_token(args: argparse.Namespace) -> int:
    out(login.access_token(gateway_url(args), force_refresh=args.refresh))
    return errors.OK


def cmd_whoami(args: argparse.Namespace) -> int:
    me = connect(args).json("GET", "/resource_server/whoami")
    if args.json:
        out(json.dumps(me, indent=2))
        return errors.OK
    out(f"{me.get('username')} ({me.get('name') or '-'})")
    out(f"  id           {me.get('id')}")
    out(f"  kind         {me.get('kind')}")
    out(f"  idp domain   {me.get('idp_domain') or '-'}")
    out(f"  groups       {', '.join(me.get('groups') or []) or '-'}")
    if me.get("personal_key"):
        out(f"  via key      {me['personal_key']['id']}")
    return errors.OK


# --- models, chat, usage ---------------------------------------------------------------------


def list_models(gateway: Gateway) -> list[dict[str, Any]]:
    listing = gateway.json("GET", f"{API}/models")
    data = listing.get("data") if isinstance(listing, dict) else None
    return [m for m in data or [] if isinstance(m, dict) and "id" in m]


def cmd_models(args: argparse.Namespace) -> int:
    models = list_models(connect(args))
    if args.json:
        out(json.dumps(models, indent=2))
        return errors.OK
    if not models:
        note("No models are open to you on this gateway.")
        return errors.OK
    rows = [["MODEL", "STATE", "CONTEXT", "SERVED BY", "CAPABILITIES"]]
    for model in models:
        caps = model.get("capabilities") or {}
        served = model.get("served_by") or []
        states = sorted({s.get("state", "unknown") for s in served}) or ["unknown"]
        flags = [
            name for name in ("tool_calling", "reasoning", "streaming") if caps.get(name) is True
        ]
        flags += caps.get("input_modalities") or []
        rows.append(
            [
                model["id"],
                ",".join(states),
                str(caps.get("context_window_tokens") or "-"),
                ",".join(f"{s.get('cluster')}/{s.get('framework')}" for s in served) or "-",
                ",".join(flags) or "-",
            ]
        )
    _table(rows)
    return errors.OK


def default_model(gateway: Gateway, wanted: str | None) -> str:
    if wanted:
        return wanted
    env = os.environ.get("IGW_MODEL")
    if env:
        return env
    models = list_models(gateway)
    ready = [m for m in models if any(s.get("state") == "ready" for s in m.get("served_by", []))]
    chosen = (ready or models)[:1]
    if not chosen:
        raise CliError("No models are open to you on this gateway (igw models).", errors.FORBIDDEN)
    return str(chosen[0]["id"])


def cmd_chat(args: argparse.Namespace) -> int:
    gateway = connect(args)
    question = " ".join(args.question) if args.question else sys.stdin.read()
    if not question.strip():
        raise CliError('Ask something: igw chat "question" (or pipe it in).', errors.USAGE)
    model = default_model(gateway, args.model)
    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": question})
    body: dict[str, Any] = {"model": model, "messages": messages}
    if args.max_tokens:
        body["max_tokens"] = args.max_tokens
    if args.no_stream:
        answer = gateway.json("POST", f"{API}/chat/completions", json=body)
        out(answer["choices"][0]["message"].get("content") or "")
        return errors.OK
    body["stream"] = True
    wrote = False
    for event in gateway.stream_events(f"{API}/chat/completions", body):
        for choice in event.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                sys.stdout.write(piece)
                sys.stdout.flush()
                wrote = True
    if wrote:
        sys.stdout.write("\n")
    return errors.OK


def cmd_usage(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("start", args.start), ("end", args.end)) if v}
    report = connect(args).json("GET", f"{API}/usage", params=params)
    if args.json:
        out(json.dumps(report, indent=2))
        return errors.OK
    total = report.get("total") or {}
    out(f"From {report.get('start')} to {report.get('end')}:")
    out(
        f"  {total.get('requests', 0)} requests, {total.get('total_tokens', 0)} tokens "
        f"({total.get('prompt_tokens', 0)} prompt, {total.get('completion_tokens', 0)} answer), "
        f"{total.get('errors', 0)} errors"
    )
    rows = [["DAY", "MODEL", "REQUESTS", "TOKENS", "ERRORS"]]
    for row in report.get("data") or []:
        rows.append(
            [
                str(row.get("day", "-")),
                str(row.get("model", "-")),
                str(row.get("requests", 0)),
                str(row.get("total_tokens", 0)),
                str(row.get("errors", 0)),
            ]
        )
    if len(rows) > 1:
        _table(rows)
    for allocation in report.get("allocations") or []:
        tokens = allocation.get("tokens") or {}
        out(
            f"Allocation {allocation.get('allocation')} (project {allocation.get('project')}, "
            f"{allocation.get('period')}): {tokens.get('spent', '-')} of "
            f"{tokens.get('budget', '-')} tokens, renews {allocation.get('renews_at')}"
        )
    return errors.OK


# --- batches ---------------------------------------------------------------------------------


def cmd_batch_submit(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file.", errors.USAGE)
    gateway = connect(args)
    with path.open("rb") as handle:
        uploaded = gateway.json(
            "POST",
            f"{API}/files",
            files={"file": (path.name, handle, "application/jsonl")},
            data={"purpose": "batch"},
            timeout=600,
        )
    batch = gateway.json(
        "POST",
        f"{API}/batches",
        json={
            "input_file_id": uploaded["id"],
            "endpoint": args.endpoint,
            "completion_window": "24h",
        },
    )
    out(batch["id"])
    note(f"Submitted {path} as batch {batch['id']} ({batch.get('status')}).")
    return errors.OK


def cmd_batch_status(args: argparse.Namespace) -> int:
    gateway = connect(args)
    if not args.batch_id:
        page = gateway.json("GET", f"{API}/batches", params={"limit": 20})
        rows = [["BATCH", "STATUS", "DONE", "FAILED", "TOTAL", "CREATED"]]
        for batch in page.get("data") or []:
            counts = batch.get("request_counts") or {}
            rows.append(
                [
                    str(batch.get("id")),
                    str(batch.get("status")),
                    str(counts.get("completed", 0)),
                    str(counts.get("failed", 0)),
                    str(counts.get("total", 0)),
                    str(batch.get("created_at")),
                ]
            )
        _table(rows)
        return errors.OK
    batch = gateway.json("GET", f"{API}/batches/{args.batch_id}")
    out(json.dumps(batch, indent=2))
    return errors.OK


def cmd_batch_download(args: argparse.Namespace) -> int:
    gateway = connect(args)
    batch = gateway.json("GET", f"{API}/batches/{args.batch_id}")
    file_id = batch.get("error_file_id") if args.errors else batch.get("output_file_id")
    if not file_id:
        raise CliError(
            f"Batch {args.batch_id} has no {'error' if args.errors else 'output'} file yet "
            f"(status {batch.get('status')}).",
            errors.FAILED,
        )
    answer = gateway.request("GET", f"{API}/files/{file_id}/content", stream=True, timeout=600)
    target = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        for chunk in answer.iter_content(chunk_size=65536):
            target.write(chunk)
    finally:
        if args.output:
            target.close()
        else:
            target.flush()
    return errors.OK


# --- personal keys ---------------------------------------------------------------------------


def create_key(
    gateway: Gateway, name: str, expires: str | None, models: list[str], clusters: list[str]
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if expires:
        body["expires"] = expires
    if models:
        body["models"] = models
    if clusters:
        body["clusters"] = clusters
    created: dict[str, Any] = gateway.json("POST", f"{API}/keys", json=body)
    return created


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def cmd_keys_create(args: argparse.Namespace) -> int:
    gateway = connect(args, login_only=True)
    name = args.name or f"igw on {socket.gethostname()}"
    created = create_key(gateway, name, args.expires, _split(args.models), _split(args.clusters))
    if args.json:
        out(json.dumps(created, indent=2))
    else:
        out(created["key"])
        note(
            f"Key {created['id']} ({created['name']}) expires {created['expires_at']}. It is "
            "shown once: store it now (e.g. OPENAI_API_KEY)."
        )
    return errors.OK


def cmd_keys_list(args: argparse.Namespace) -> int:
    listing = connect(args, login_only=True).json("GET", f"{API}/keys")
    keys = listing.get("data") or []
    if args.json:
        out(json.dumps(keys, indent=2))
        return errors.OK
    if not keys:
        note("You have no personal keys (igw keys create).")
        return errors.OK
    rows = [["ID", "NAME", "PREFIX", "STATUS", "EXPIRES", "SCOPE"]]
    for key in keys:
        scope = ",".join((key.get("models") or []) + (key.get("clusters") or [])) or "-"
        rows.append(
            [
                str(key["id"]),
                key["name"],
                key["prefix"],
                key["status"],
                str(key.get("expires_at") or "never")[:19],
                scope,
            ]
        )
    _table(rows)
    return errors.OK


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    gateway = connect(args, login_only=True)
    for key_id in args.key_ids:
        revoked = gateway.json("DELETE", f"{API}/keys/{key_id}")
        note(f"Revoked key {revoked['id']} ({revoked['name']}).")
    return errors.OK


# --- agents ----------------------------------------------------------------------------------


def cmd_agent_configure(args: argparse.Namespace) -> int:
    url = gateway_url(args)
    gateway = Gateway(url, login.access_token(url))
    listed = list_models(gateway)
    if args.models:
        wanted = set(_split(args.models))
        listed = [m for m in listed if m["id"] in wanted]
    if not listed:
        raise CliError("No models are open to you on this gateway (igw models).", errors.FORBIDDEN)
    models = [
        agents.Model(
            m["id"],
            (m.get("capabilities") or {}).get("context_window_tokens"),
            (m.get("capabilities") or {}).get("max_output_tokens"),
        )
        for m in listed
    ]
    default = args.model or models[0].id
    if default not in {m.id for m in models}:
        raise CliError(f"{default!r} is not among your models (igw models).", errors.USAGE)
    key = args.key
    if not key:
        created = create_key(
            gateway,
            f"{args.agent} on {socket.gethostname()}",
            args.expires,
            _split(args.models),
            [],
        )
        key = created["key"]
        note(f"Created personal key {created['id']} for {args.agent} (igw keys list).")
    target = agents.Target(url, key, models, default)
    path = agents.WRITERS[args.agent](target)
    note(f"Wrote {path}: {args.agent} now reaches {len(models)} model(s), default {default}.")
    return errors.OK
