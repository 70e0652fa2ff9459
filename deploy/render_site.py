"""Fill in the nginx site template (deploy/nginx/inference-gateway.conf) for one installation."""

from __future__ import annotations

import argparse
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx") / "inference-gateway.conf"


def render(
    upstreams: list[str],
    listen: str,
    server_name: str,
    cert: str,
    key: str,
    max_body: int,
    max_fails: int = 3,
    fail_timeout: int = 10,
) -> str:
    """The site text; `upstreams` are host:port of the gateway hosts."""
    servers = "\n".join(
        f"    server {address} max_fails={max_fails} fail_timeout={fail_timeout}s;"
        for address in upstreams
    )
    values = {
        "UPSTREAM_SERVERS": servers,
        "LISTEN": listen,
        "SERVER_NAME": server_name,
        "CERT": cert,
        "KEY": key,
        "MAX_BODY": str(max_body),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        raise ValueError("template values left unfilled")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", action="append", required=True, help="host:port, repeat")
    parser.add_argument("--listen", default="443")
    parser.add_argument("--server-name", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument(
        "--max-body",
        type=int,
        default=20 * 1024 * 1024,
        help="bytes; the same as MAX_REQUEST_BODY_BYTES",
    )
    args = parser.parse_args()
    print(
        render(args.upstream, args.listen, args.server_name, args.cert, args.key, args.max_body),
        end="",
    )


if __name__ == "__main__":
    main()
