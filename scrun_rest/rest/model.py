"""The normalised job model callers see, whatever the API version."""
import enum
from dataclasses import dataclass, field
from typing import Any, Dict, Optional


class JobState(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    REQUEUED = "REQUEUED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self):
        """True once the job can no longer run (COMPLETING still has an epilog going)."""
        return self in _TERMINAL


_TERMINAL = frozenset((
    JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED, JobState.TIMEOUT,
    JobState.NODE_FAIL, JobState.PREEMPTED, JobState.BOOT_FAIL, JobState.DEADLINE,
    JobState.OUT_OF_MEMORY,
))


@dataclass
class JobInfo:
    """One job as GET job/{id} describes it, normalised across versions.

    exit_status is the batch script's exit code when it exited; exit_signal
    the signal number when a signal killed it; both None while it runs.
    Times are epoch seconds or None when Slurm has none.
    """
    job_id: int
    name: Optional[str]
    state: JobState
    state_reason: Optional[str]
    exit_status: Optional[int]
    exit_signal: Optional[int]
    start_time: Optional[int]
    end_time: Optional[int]
    nodes: Optional[str]
    partition: Optional[str]
    user_name: Optional[str]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Controller:
    """One slurmctld as ping reports it; status is the ping's error text (v0.0.45+)."""
    hostname: Optional[str]
    up: bool
    mode: Optional[str]
    status: Optional[str] = None
