"""The kit's data, as the runtime sees it: the tuning knobs (:class:`KitConfig`) and the
parts a worker reads off a kit (:class:`KitData`, :class:`KitParts`).

They live apart from ``kit`` so that the runtime (``_worker``, ``_supervisor``,
``_execution``) depends on the kit's data and never imports the ``Kit`` class: ``kit``
imports the runtime, not the other way round. ``taskkit.KitConfig`` and
``taskkit.kit.KitConfig`` are the class defined here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ._backend_clock import BackendClock
from ._hooks import HookCaller
from ._router import TaskRouter
from ._validation import DEFAULT_MAX_DATA_SIZE, DEFAULT_MAX_ERROR_SIZE, DEFAULT_MAX_RESULT_SIZE
from .backend import Backend
from .errors import ConfigurationError
from .functions import TaskRegistry
from .handler import TaskHandler

__all__ = ["MIN_ERROR_SIZE", "KitConfig", "KitData", "KitParts"]


@dataclass(frozen=True)
class KitConfig:
    """Tuning knobs. The defaults suit production; tests shrink the intervals.

    Every field is checked when the config is built; a bad value raises
    :class:`~taskkit.errors.ConfigurationError` naming the field. Durations are finite numbers
    of seconds above 0 (``grace_period`` may be 0: hand running tasks back at once; so may
    ``unknown_task_window``), counts and sizes are ints (``max_deliveries`` and the sizes
    >= 1, ``max_error_size`` >= 64, ``prefetch`` >= 0), ``heartbeat_interval`` is below
    ``lease_seconds``, ``metrics_port`` is None or a TCP port (0 to 65535) and
    ``metrics_host`` a non-empty string.

    :ivar lease_seconds: how long a claim is valid without renewal. A worker that stops
        renewing (killed, paused, cut off) loses its tasks to another worker after this.
    :ivar heartbeat_interval: how often live workers renew their leases (default: a third of
        the lease).
    :ivar max_deliveries: deliveries of one attempt that may end with a lost worker before the
        task becomes a dead letter ("worker lost").
    :ivar default_timeout: the run-time limit of a task that sets none, in seconds (None: no
        limit).
    :ivar timeout_grace: seconds a timed-out handler gets to unwind before its thread counts
        as stuck and the process is recycled.
    :ivar grace_period: seconds a graceful shutdown waits for running tasks before handing
        them back.
    :ivar max_data_size: cap on encoded task data, in bytes.
    :ivar max_result_size: cap on encoded results, in bytes.
    :ivar max_error_size: cap on stored error text, in bytes (longer text is truncated).
    :ivar max_idle_wait: the longest a claimer sleeps between claims when nothing notifies it.
    :ivar control_interval: how often workers look for control events.
    :ivar prefetch: claimed tasks a group may hold ready beyond its busy threads, so its
        threads never wait on a claim's round trip. None (the default): as many as the group
        has threads while its tasks take under 50 ms on average, none otherwise (a long task
        must not hold others that an idle worker could run). 0 turns prefetch off. While
        prefetch is on, executors may also start their next task before the previous outcome
        is stored (up to twice the prefetch per group), so outcomes are written in batches;
        a crash can then make up to ``threads + 2 * prefetch`` tasks of a group run again,
        instead of ``threads``.
    :ivar unknown_task_window: seconds after its creation that a task no function or handler
        of its worker knows becomes a dead letter ("unknown task: ..."); until then it is
        handed back with a growing back-off (at most 30 s), its delivery uncounted, so a
        worker deployed with the new code runs it. 0 buries such a task at once.
    :ivar loop_block_warning: seconds an ``async`` task may run without awaiting (holding
        the worker's event loop, e.g. ``time.sleep`` in ``async def``) before the worker logs
        a warning naming it, once per task. Leases are renewed meanwhile all the same.
    :ivar metrics_port: serve Prometheus metrics of the supervisor's workers on this TCP
        port (``taskkit worker --metrics-port``; 0 picks a free port, which the supervisor
        logs). None (the default): no listener. Needs ``taskkit-core[prometheus]``; see
        ``taskkit.contrib.prometheus.PrometheusExporter``.
    :ivar metrics_host: the address the metrics endpoint binds to (default: only this host).
    """

    lease_seconds: float = 30.0
    heartbeat_interval: float | None = None
    max_deliveries: int = 3
    default_timeout: float | None = 600.0
    timeout_grace: float = 5.0
    grace_period: float = 30.0
    max_data_size: int = DEFAULT_MAX_DATA_SIZE
    max_result_size: int = DEFAULT_MAX_RESULT_SIZE
    max_error_size: int = DEFAULT_MAX_ERROR_SIZE
    max_idle_wait: float = 5.0
    control_interval: float = 1.0
    prefetch: int | None = None
    unknown_task_window: float = 3600.0
    loop_block_warning: float = 1.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        _seconds(self, "lease_seconds", minimum=0.0)
        if self.heartbeat_interval is not None:
            _seconds(self, "heartbeat_interval", minimum=0.0)
            if self.heartbeat_interval >= self.lease_seconds:
                raise ConfigurationError(
                    f"KitConfig.heartbeat_interval must be > 0 and < lease_seconds "
                    f"({self.lease_seconds}), not {self.heartbeat_interval!r}"
                )
        _count(self, "max_deliveries", minimum=1)
        if self.default_timeout is not None:
            _seconds(self, "default_timeout", minimum=0.0, none_ok=True)
        _seconds(self, "timeout_grace", minimum=0.0)
        _seconds(self, "grace_period", minimum=0.0, zero_ok=True)
        _count(self, "max_data_size", minimum=1)
        _count(self, "max_result_size", minimum=1)
        # Room for the truncation marker and a line of the error.
        _count(self, "max_error_size", minimum=MIN_ERROR_SIZE)
        _seconds(self, "max_idle_wait", minimum=0.0)
        _seconds(self, "control_interval", minimum=0.0)
        if self.prefetch is not None:
            _count(self, "prefetch", minimum=0, none_ok=True)
        _seconds(self, "unknown_task_window", minimum=0.0, zero_ok=True)
        _seconds(self, "loop_block_warning", minimum=0.0)
        if self.metrics_port is not None:
            _count(self, "metrics_port", minimum=0, none_ok=True)
            if self.metrics_port > 65535:
                raise ConfigurationError(
                    f"KitConfig.metrics_port must be a TCP port (0 to 65535) or None, "
                    f"not {self.metrics_port!r}"
                )
        if not isinstance(self.metrics_host, str) or not self.metrics_host.strip():
            raise ConfigurationError(
                f"KitConfig.metrics_host must be a host name or address, not {self.metrics_host!r}"
            )

    @property
    def heartbeat(self) -> float:
        return self.heartbeat_interval or self.lease_seconds / 3


#: The smallest ``max_error_size``: the truncation marker and a line of the error fit.
MIN_ERROR_SIZE = 64


def _seconds(
    config: KitConfig,
    name: str,
    *,
    minimum: float,
    zero_ok: bool = False,
    none_ok: bool = False,
) -> None:
    """Check that the field ``name`` is a finite number of seconds above ``minimum``."""
    value = getattr(config, name)
    valid = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > minimum or (zero_ok and value == minimum))
    )
    if not valid:
        bound = ">= 0" if zero_ok else "> 0"
        suffix = " or None" if none_ok else ""
        raise ConfigurationError(
            f"KitConfig.{name} must be a finite number of seconds {bound}{suffix}, not {value!r}"
        )


def _count(config: KitConfig, name: str, *, minimum: int, none_ok: bool = False) -> None:
    """Check that the field ``name`` is an int of at least ``minimum``."""
    value = getattr(config, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        suffix = " or None" if none_ok else ""
        raise ConfigurationError(
            f"KitConfig.{name} must be an int >= {minimum}{suffix}, not {value!r}"
        )


class KitData(Protocol):
    """What the runtime reads off a kit: a :class:`~taskkit.Kit` is one, so is
    :class:`KitParts` (what a worker process builds for itself)."""

    @property
    def backend(self) -> Backend: ...

    @property
    def handler(self) -> TaskHandler: ...

    @property
    def config(self) -> KitConfig: ...

    @property
    def plugins(self) -> tuple[object, ...]: ...

    @property
    def hook_caller(self) -> HookCaller: ...

    @property
    def tasks(self) -> TaskRegistry: ...

    @property
    def router(self) -> TaskHandler:
        """What the runtime runs tasks through: the function tasks, then the handler."""
        ...

    def backend_now(self) -> float: ...


@dataclass(frozen=True)
class KitParts:
    """A kit's data without the kit: what a worker process runs on (see ``worker_main``).

    Build it with :meth:`of`, which makes the hook caller for ``plugins`` as a kit does.
    """

    backend: Backend
    handler: TaskHandler
    config: KitConfig
    plugins: tuple[object, ...]
    hook_caller: HookCaller
    clock: BackendClock = field(repr=False)
    tasks: TaskRegistry = field(default_factory=TaskRegistry)
    router: TaskHandler = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "router", TaskRouter(self.handler, self.tasks))

    @classmethod
    def of(
        cls,
        backend: Backend,
        handler: TaskHandler,
        config: KitConfig,
        plugins: Sequence[object] = (),
        tasks: TaskRegistry | None = None,
    ) -> KitParts:
        """The parts for ``backend``, ``handler``, ``config``, kit-local ``plugins`` and the
        kit's function ``tasks``."""
        plugins = tuple(plugins)
        return cls(
            backend,
            handler,
            config,
            plugins,
            HookCaller.for_plugins(plugins),
            BackendClock(backend, resync_after=BackendClock.KIT_RESYNC),
            tasks if tasks is not None else TaskRegistry(),
        )

    def backend_now(self) -> float:
        """The backend's clock, as :meth:`taskkit.Kit.backend_now` reads it."""
        return self.clock.now()
