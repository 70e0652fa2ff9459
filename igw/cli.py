"""`igw`: the command line (argparse), and the exit statuses of errors.py."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from igw import __version__, agents, commands, state
from igw.errors import CliError

Handler = Callable[[argparse.Namespace], int]


def _gateway_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gateway", help="the gateway's URL (default: the last one logged in to, or IGW_GATEWAY)"
    )


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    help_text: str,
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    _gateway_option(parser)
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="igw",
        description="Use the inference gateway: log in with Globus once, then call its models "
        "from scripts, notebooks and coding agents.",
    )
    parser.add_argument("--version", action="version", version=f"igw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "login", commands.cmd_login, "log in with Globus (stores a refresh token)")
    p.add_argument(
        "--no-browser",
        action="store_true",
        help="print the login URL and read the code back (SSH sessions; the default there)",
    )
    p.add_argument("--client-id", help="a Globus native app's client id (default: the gateway's)")
    _command(sub, "logout", commands.cmd_logout, "revoke the login's tokens and forget them")
    p = _command(sub, "token", commands.cmd_token, "print a valid access token (refreshed)")
    p.add_argument("--refresh", action="store_true", help="refresh it even if still valid")
    _json_option(_command(sub, "whoami", commands.cmd_whoami, "who the gateway thinks you are"))
    _json_option(
        _command(sub, "models", commands.cmd_models, "the models you may use, with their state")
    )

    p = _command(sub, "chat", commands.cmd_chat, "ask a model; the answer streams")
    p.add_argument("question", nargs="*", help="the question (default: read from stdin)")
    p.add_argument("-m", "--model", help="the model (default: IGW_MODEL, else the first ready)")
    p.add_argument("-s", "--system", help="a system prompt")
    p.add_argument("--max-tokens", type=int, help="the longest answer, in tokens")
    p.add_argument("--no-stream", action="store_true", help="wait for the whole answer")

    p = _command(sub, "usage", commands.cmd_usage, "your requests, tokens and allocations")
    p.add_argument("--start", help="first day (YYYY-MM-DD; default: 30 days ago)")
    p.add_argument("--end", help="last day (YYYY-MM-DD; default: today)")
    _json_option(p)

    batch = sub.add_parser("batch", help="batch inference (OpenAI's Batch API)")
    batch_sub = batch.add_subparsers(dest="batch_command", required=True, metavar="ACTION")
    p = _command(batch_sub, "submit", commands.cmd_batch_submit, "upload FILE.jsonl and start it")
    p.add_argument("file", help="one request per line (docs/batches.md)")
    p.add_argument("--endpoint", default="/v1/chat/completions", help="the lines' route")
    p = _command(batch_sub, "status", commands.cmd_batch_status, "one batch, or your recent ones")
    p.add_argument("batch_id", nargs="?")
    p = _command(batch_sub, "download", commands.cmd_batch_download, "a finished batch's output")
    p.add_argument("batch_id")
    p.add_argument("-o", "--output", help="write to this file (default: stdout)")
    p.add_argument("--errors", action="store_true", help="the error file instead")

    keys = sub.add_parser("keys", help="personal API keys (they act as you)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = _command(keys_sub, "create", commands.cmd_keys_create, "create a key; printed once")
    p.add_argument("--name", help="what the key is for (default: igw on HOST)")
    p.add_argument(
        "--expires", help="lifetime such as 30d, 12h, 2w (default: the gateway's, 30d at most)"
    )
    p.add_argument("--models", action="append", help="only these models (comma-separated)")
    p.add_argument("--clusters", action="append", help="only these clusters (comma-separated)")
    _json_option(p)
    _json_option(_command(keys_sub, "list", commands.cmd_keys_list, "your keys (never the keys)"))
    p = _command(keys_sub, "revoke", commands.cmd_keys_revoke, "revoke keys by id")
    p.add_argument("key_ids", nargs="+", type=int)

    agent = sub.add_parser("agent", help="set up a coding agent for the gateway")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    p = _command(
        agent_sub,
        "configure",
        commands.cmd_agent_configure,
        "write an agent's config (base URL, your models, a key), keeping its other settings",
    )
    p.add_argument("agent", choices=agents.AGENTS)
    p.add_argument("-m", "--model", help="the agent's default model (default: the first)")
    p.add_argument("--models", action="append", help="only these models (comma-separated)")
    p.add_argument("--key", help="use this key instead of creating a personal key")
    p.add_argument("--expires", help="the new key's lifetime (default: the gateway's)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except CliError as error:
        if error.requirements is not None and error.gateway:
            # The next `igw login` asks Globus for exactly the session the gateway named.
            state.remember_requirements(error.gateway, error.requirements)
        print(f"igw: {error.message}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print("igw: interrupted", file=sys.stderr)
        return 130
    return status
