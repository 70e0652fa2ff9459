"""End-to-end and unit tests of the OpenAI-compatible inference path (issue 4)."""
