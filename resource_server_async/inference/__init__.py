"""The shared inference path: pipeline, federated routing, visibility, Anthropic Messages."""
