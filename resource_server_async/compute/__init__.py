"""Executors that run a registered function: on Globus Compute, or locally."""
