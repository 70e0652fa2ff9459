"""The end of a batch: output and error files written from the stored outcomes, final status.

Runs in a worker thread. Safe to run again after a crash mid-way: it starts the files afresh.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from resource_server_async.batches import status, storage
from resource_server_async.batches.line_store import outputs
from resource_server_async.models import Batch, BatchFile


class _OutputFile:
    def __init__(self, batch: Batch, kind: str) -> None:
        self.id = storage.new_file_id()
        self.filename = f"{batch.id}_{kind}.jsonl"
        self.lines = 0
        self.bytes = 0
        self._stream = storage.partial_path_of(self.id).open("wb")

    def write(self, line: str) -> None:
        data = line.encode() + b"\n"
        self._stream.write(data)
        self.lines += 1
        self.bytes += len(data)

    def keep(self, principal_id: str) -> str:
        """The file's id once stored, or "" for a file without lines (not kept)."""
        self._stream.close()
        if not self.lines:
            storage.remove(self.id)
            return ""
        storage.partial_path_of(self.id).rename(storage.path_of(self.id))
        BatchFile.objects.create(
            id=self.id,
            principal_id=principal_id,
            purpose="batch_output",
            filename=self.filename,
            bytes=self.bytes,
            lines=self.lines,
        )
        return self.id


def finalize(batch_id: str, worker_id: str, final: str) -> None:
    """Write the files of what finished and enter `final` (completed, expired or cancelled)."""
    batch = Batch.objects.get(pk=batch_id)
    if final == status.COMPLETED:
        Batch.objects.filter(pk=batch_id, claimed_by=worker_id).update(
            status=status.FINALIZING, finalizing_at=timezone.now()
        )
    storage.ensure_directory()
    output, errors = _OutputFile(batch, "output"), _OutputFile(batch, "error")
    completed = failed = 0
    for ok, line in outputs(batch_id):
        (output if ok else errors).write(line)
        completed, failed = completed + ok, failed + (not ok)
    with transaction.atomic():
        Batch.objects.filter(pk=batch_id, claimed_by=worker_id).update(
            status=final,
            output_file_id=output.keep(batch.principal_id),
            error_file_id=errors.keep(batch.principal_id),
            completed=completed,
            failed=failed,
            claimed_by="",
            claim_expires_at=None,
            **{status.TIMESTAMP_OF[final]: timezone.now()},
        )
