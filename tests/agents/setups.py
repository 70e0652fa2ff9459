"""How each coding agent is pointed at the gateway: its config files, environment and command line.

Each setup writes only into a temporary HOME, turns off the agent's update checks and telemetry
(there is no internet here, and a run must not wait on them), and shrinks the agent's prompt to
fit SmolLM2's 8,192 tokens of context: a short system prompt and one shell tool instead of the
10-12k tokens each agent sends by default. docs/agents.md shows the same settings to researchers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# A short system prompt in place of each agent's own (10-17 kB of text); the task is checkable
# with any answer, which is what a 135M model can be relied on for.
INSTRUCTIONS = (
    "You are a coding agent in a terminal. Answer in one short sentence. "
    "Use the shell tool only when the task needs a command."
)
TASK = "Say hello to the user."
CONTEXT_TOKENS = 8192
# The answer's bound; the agents' defaults (32,000 tokens) exceed the model's whole context.
OUTPUT_TOKENS = 256


@dataclass(frozen=True)
class Gateway:
    """Where an agent finds the model: the gateway's cluster/framework prefix, a key, a model."""

    url: str  # e.g. http://127.0.0.1:8000/resource_server/local/llama-cpp
    api_key: str
    model: str


@dataclass(frozen=True)
class AgentRun:
    """A prepared agent: run `argv` in `cwd` with `env`; `final_message` reads its answer."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    final_message: Callable[[str], str]

    def run(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """The finished run; on `timeout`, its whole process group is killed (the npm entry
        points start the native binary as a child) and TimeoutExpired carries the output."""
        # stdin from /dev/null: Codex reads a piped stdin as more prompt, and waits for it.
        process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise subprocess.TimeoutExpired(self.argv, timeout, stdout, stderr) from None
        return subprocess.CompletedProcess(self.argv, process.returncode, stdout, stderr)


def _environment(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment with HOME (and the XDG directories) inside `home`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
    }
    env.update(extra)
    return env


def _workdir(home: Path) -> Path:
    work = home / "project"
    work.mkdir(parents=True, exist_ok=True)
    return work


def codex(bin_dir: Path, home: Path, gateway: Gateway) -> AgentRun:
    """Codex CLI: `codex exec` with a model provider whose wire API is Responses."""
    config = home / ".codex"
    config.mkdir(parents=True, exist_ok=True)
    instructions = config / "instructions.md"
    instructions.write_text(INSTRUCTIONS + "\n")
    (config / "config.toml").write_text(
        f"""model = "{gateway.model}"
model_provider = "gateway"
model_context_window = {CONTEXT_TOKENS}
model_instructions_file = "{instructions}"
web_search = "disabled"
check_for_update_on_startup = false

[features]
multi_agent = false
goals = false
view_image = false

[analytics]
enabled = false

[model_providers.gateway]
name = "Inference gateway"
base_url = "{gateway.url}/v1"
env_key = "GATEWAY_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"""
    )
    answer = home / "last-message.txt"
    return AgentRun(
        "codex",
        [
            str(bin_dir / "codex"),
            "exec",
            "--skip-git-repo-check",
            "--sandbox",
            "read-only",
            "--output-last-message",
            str(answer),
            TASK,
        ],
        _environment(home, CODEX_HOME=str(config), GATEWAY_API_KEY=gateway.api_key),
        _workdir(home),
        lambda stdout: answer.read_text() if answer.exists() else "",
    )


def claude_code(bin_dir: Path, home: Path, gateway: Gateway) -> AgentRun:
    """Claude Code: `claude -p` against an Anthropic Messages base URL."""
    env = _environment(
        home,
        ANTHROPIC_BASE_URL=gateway.url,
        ANTHROPIC_API_KEY=gateway.api_key,
        # Claude Code's background calls (titles, summaries) go to the "small fast" model.
        ANTHROPIC_DEFAULT_HAIKU_MODEL=gateway.model,
        ANTHROPIC_SMALL_FAST_MODEL=gateway.model,
        CLAUDE_CODE_MAX_OUTPUT_TOKENS=str(OUTPUT_TOKENS),
        CLAUDE_CODE_MAX_RETRIES="0",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
    )
    argv = [
        str(bin_dir / "claude"),
        "-p",
        TASK,
        "--output-format",
        "json",
        "--model",
        gateway.model,
        "--tools",
        "Bash",
        "--system-prompt",
        INSTRUCTIONS,
    ]
    return AgentRun("claude", argv, env, _workdir(home), _claude_result)


def _claude_result(stdout: str) -> str:
    result = json.loads(stdout)
    return "" if result.get("is_error") else str(result.get("result") or "")


def opencode(bin_dir: Path, home: Path, gateway: Gateway) -> AgentRun:
    """OpenCode: `opencode run` with an OpenAI-compatible (chat/completions) provider."""
    config = home / ".config" / "opencode"
    config.mkdir(parents=True, exist_ok=True)
    off = ["task", "todowrite", "webfetch", "skill", "glob", "grep", "edit", "read", "write"]
    settings = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "gateway": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Inference gateway",
                "options": {"baseURL": f"{gateway.url}/v1", "apiKey": "{env:GATEWAY_API_KEY}"},
                "models": {
                    gateway.model: {
                        "name": gateway.model,
                        "limit": {"context": CONTEXT_TOKENS, "output": OUTPUT_TOKENS},
                    }
                },
            }
        },
        "model": f"gateway/{gateway.model}",
        "small_model": f"gateway/{gateway.model}",
        "autoupdate": False,
        "share": "disabled",
        "tools": dict.fromkeys(off, False),
        "agent": {"build": {"prompt": INSTRUCTIONS}},
    }
    (config / "opencode.json").write_text(json.dumps(settings, indent=2))
    env = _environment(
        home,
        GATEWAY_API_KEY=gateway.api_key,
        OPENCODE_DISABLE_MODELS_FETCH="1",
        OPENCODE_DISABLE_AUTOUPDATE="1",
        OPENCODE_DISABLE_LSP_DOWNLOAD="1",
        OPENCODE_DISABLE_DEFAULT_PLUGINS="1",
    )
    # --title: a title of our own, so no extra model call generates one.
    argv = [str(bin_dir / "opencode"), "run", "--format", "json", "--title", "agent test", TASK]
    return AgentRun("opencode", argv, env, _workdir(home), _opencode_text)


def _opencode_text(stdout: str) -> str:
    """The text parts of OpenCode's JSON event lines, joined."""
    texts = []
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        part = event.get("part") or {}
        if event.get("type") == "text" and part.get("type") == "text":
            texts.append(str(part.get("text") or ""))
    return "".join(texts)


SETUPS: dict[str, Callable[[Path, Path, Gateway], AgentRun]] = {
    "codex": codex,
    "claude": claude_code,
    "opencode": opencode,
}
# The route each agent calls under /resource_server/{cluster}/{framework}/v1/.
ROUTES = {"codex": "responses", "claude": "messages", "opencode": "chat/completions"}
