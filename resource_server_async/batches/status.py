"""The batch status machine, in OpenAI's names.

validating -> in_progress -> finalizing -> completed | failed | expired;
validating | in_progress -> cancelling -> cancelled.
"""

from __future__ import annotations

VALIDATING = "validating"
IN_PROGRESS = "in_progress"
FINALIZING = "finalizing"
COMPLETED = "completed"
FAILED = "failed"
EXPIRED = "expired"
CANCELLING = "cancelling"
CANCELLED = "cancelled"
# Cluster batches (the reference gateway's names): pending -> running -> completed | failed.
PENDING = "pending"
RUNNING = "running"

# A worker still has something to do for these (they count against MAX_BATCHES_PER_USER).
ACTIVE = (VALIDATING, IN_PROGRESS, FINALIZING, CANCELLING, PENDING, RUNNING)
FINAL = (COMPLETED, FAILED, EXPIRED, CANCELLED)
CANCELLABLE = (VALIDATING, IN_PROGRESS)

# The timestamp field set on entering each status.
TIMESTAMP_OF = {
    IN_PROGRESS: "in_progress_at",
    RUNNING: "in_progress_at",
    FINALIZING: "finalizing_at",
    COMPLETED: "completed_at",
    FAILED: "failed_at",
    EXPIRED: "expired_at",
    CANCELLING: "cancelling_at",
    CANCELLED: "cancelled_at",
}

# completion_window values accepted, in seconds (OpenAI accepts only "24h").
COMPLETION_WINDOWS = {"24h": 24 * 3600}
