"""Pure translations between API dialects (Anthropic Messages <-> OpenAI chat/completions)."""
