"""Calls to model servers: pooled clients, their failures as the caller's errors, whole streams."""
