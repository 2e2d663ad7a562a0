"""taskkit: a distributed task runner that loses no task.

The public surface is re-exported here; everything in modules starting with ``_`` is private.
"""

from __future__ import annotations

from ._headers import TaskHeaders
from ._scheduler import Scheduler
from ._stats import FinishedCounts, GroupStats, WorkerInfo
from ._task import (
    DEFAULT_TTL,
    CancelResult,
    Claim,
    ClaimBatch,
    ControlEvent,
    ControlKind,
    LeaseStatus,
    Outcome,
    OutcomeWrite,
    QueueStats,
    Task,
    TaskState,
)
from .backend import Backend
from .clock import Clock, FakeClock, SystemClock
from .context import TaskContext, current_task
from .errors import (
    BackendUnavailable,
    Cancelled,
    ConfigurationError,
    DeadLettered,
    DiscardTask,
    Failed,
    InvalidTask,
    LeaseLost,
    NotFound,
    PayloadTooLarge,
    ResultGetPrevented,
    ResultGetTimedOut,
    ScheduleError,
    TaskCancelled,
    TaskkitError,
    TaskTimeout,
    UnknownTask,
)
from .functions import AsyncTaskFunction, TaskFunction, TaskOptions, TaskRegistry
from .handler import TaskHandler
from .kit import Kit, KitConfig, Result, make_kit
from .memory import MemoryBackend
from .plugins import hookimpl
from .retry import ExponentialBackoff, NoRetry, RetryPolicy
from .schedule import (
    CronSchedule,
    DuplicationPolicy,
    OnlyEarliest,
    OnlyLatest,
    RegularSchedule,
    Schedule,
    ScheduleEntriesCompat,
    ScheduleEntriesCompatMapping,
    ScheduleEntry,
    ScheduleEntryCompat,
    ScheduleEntryDict,
)

__version__ = "1.0.0a1"

__all__ = [
    "DEFAULT_TTL",
    "AsyncTaskFunction",
    "Backend",
    "BackendUnavailable",
    "CancelResult",
    "Cancelled",
    "Claim",
    "ClaimBatch",
    "Clock",
    "ConfigurationError",
    "ControlEvent",
    "ControlKind",
    "CronSchedule",
    "DeadLettered",
    "DiscardTask",
    "DuplicationPolicy",
    "ExponentialBackoff",
    "Failed",
    "FakeClock",
    "FinishedCounts",
    "GroupStats",
    "InvalidTask",
    "Kit",
    "KitConfig",
    "LeaseLost",
    "LeaseStatus",
    "MemoryBackend",
    "NoRetry",
    "NotFound",
    "OnlyEarliest",
    "OnlyLatest",
    "Outcome",
    "OutcomeWrite",
    "PayloadTooLarge",
    "QueueStats",
    "RegularSchedule",
    "Result",
    "ResultGetPrevented",
    "ResultGetTimedOut",
    "RetryPolicy",
    "Schedule",
    "ScheduleEntriesCompat",
    "ScheduleEntriesCompatMapping",
    "ScheduleEntry",
    "ScheduleEntryCompat",
    "ScheduleEntryDict",
    "ScheduleError",
    "Scheduler",
    "SystemClock",
    "Task",
    "TaskCancelled",
    "TaskContext",
    "TaskFunction",
    "TaskHandler",
    "TaskHeaders",
    "TaskOptions",
    "TaskRegistry",
    "TaskState",
    "TaskTimeout",
    "TaskkitError",
    "UnknownTask",
    "WorkerInfo",
    "__version__",
    "current_task",
    "hookimpl",
    "make_kit",
]
