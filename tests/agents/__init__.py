"""Coding agents (Codex CLI, Claude Code, OpenCode) run against the gateway."""
