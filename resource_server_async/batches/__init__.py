"""Batch inference (docs/batches.md): files, batches, and the worker that runs their lines.

The API half (api/views/batches.py) only stores files and batches; `manage.py batch_worker`
owns execution, with all state in the database so that a restart resumes where it stopped.
"""
