"""Tests of the Globus Compute path: executors, cluster-side functions, streaming, /jobs."""
