"""Starting and supervising worker processes.

The supervisor restarts a worker process that dies and, before that, expires the dead
process's leases (``backend.release_worker``) so its tasks run again at once instead of after
their lease runs out. Shutdown is bounded: the first SIGTERM/SIGINT asks the workers to stop
gracefully; a second one, or the grace period running out, kills them.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import FrameType
from typing import TYPE_CHECKING, Any

from ._hooks import HookCaller
from ._kitdata import KitData, KitParts
from ._worker import EXIT_OK, STOP_SIGNALS, Worker, WorkerSpec, worker_main
from .errors import ConfigurationError

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

log = logging.getLogger("taskkit.supervisor")

_RESTART_BACKOFF_MAX = 30.0
_QUICK_DEATH = 2.0  # a process that dies sooner than this after starting is crash-looping


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _context(start_method: str | None) -> Any:
    if start_method is not None and start_method not in multiprocessing.get_all_start_methods():
        raise ConfigurationError(
            f"start method {start_method!r} is not available here "
            f"(available: {', '.join(multiprocessing.get_all_start_methods())})"
        )
    return multiprocessing.get_context(start_method)


def _spawn(kit: KitData, spec: WorkerSpec, ctx: Any, daemon: bool) -> BaseProcess:
    worker_id = new_worker_id()
    process = ctx.Process(
        target=worker_main, args=(kit, spec, worker_id), name=f"taskkit-worker-{worker_id}"
    )
    process.daemon = daemon
    process.worker_id = worker_id  # read by the supervisor to release its leases
    # A forked child inherits this process's Python signal handlers; a SIGTERM that reached
    # it before it installed its own would be swallowed by the copy of ours. Hold the stop
    # signals blocked across the start: the child unblocks them once its handlers are in
    # place (worker_main), so a pending one is delivered to the worker's own handler.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return process  # type: ignore[no-any-return]


class ThreadWorkerHandle:
    """A worker run as threads of this process, shaped like a ``multiprocessing.Process``.

    Used for single-process backends (the in-memory one), where child processes would not
    share the store.
    """

    def __init__(self, kit: KitData, spec: WorkerSpec, daemon: bool) -> None:
        self.worker_id = new_worker_id()
        self.name = f"taskkit-worker-{self.worker_id}"
        self.pid = os.getpid()
        self.exitcode: int | None = None
        self._worker = Worker(kit, spec, self.worker_id, in_child=False)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=daemon)
        self.daemon = daemon

    def _run(self) -> None:
        try:
            self.exitcode = self._worker.run()
        except Exception:
            log.exception("worker %s crashed", self.worker_id)
            self.exitcode = 1

    @property
    def worker(self) -> Worker:
        """The worker itself, for introspection in tests."""
        return self._worker

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def terminate(self) -> None:
        """Ask the worker to stop gracefully (like SIGTERM)."""
        self._worker.request_stop()

    def kill(self) -> None:
        """Ask the worker to stop now, handing its tasks back."""
        self._worker.request_stop(now=True)


def start_workers(
    kit: KitData, spec: WorkerSpec, *, daemon: bool, start_method: str | None
) -> list[Any]:
    """Start ``spec.num_processes`` workers and return their process (or thread) handles."""
    if kit.config.metrics_port is not None:
        log.warning(
            "KitConfig.metrics_port is set, but workers started without a supervisor serve no "
            "metrics: run them with Kit.start or taskkit worker"
        )
    spec = _checked_once(kit, spec)
    if not kit.backend.supports_processes:
        handles = [ThreadWorkerHandle(kit, spec, daemon) for _ in range(spec.num_processes)]
        for handle in handles:
            handle.start()
        return handles
    ctx = _context(start_method)
    return [_spawn(kit, spec, ctx, daemon) for _ in range(spec.num_processes)]


def config_plugins(kit: KitData) -> tuple[object, ...]:
    """The plugins the kit's config turns on for a supervisor's workers: the Prometheus
    exporter of ``KitConfig.metrics_port`` (none when it is None).

    :raises ConfigurationError: ``prometheus_client`` is not installed, or the kit already
        has an exporter among its plugins.
    """
    config = kit.config
    if config.metrics_port is None:
        return ()
    try:
        from .contrib.prometheus import PrometheusExporter  # noqa: PLC0415 - an optional extra
    except ImportError as exc:
        raise ConfigurationError(
            f"KitConfig.metrics_port needs prometheus_client ({exc}): "
            "pip install 'taskkit-core[prometheus]'"
        ) from exc
    if any(isinstance(plugin, PrometheusExporter) for plugin in kit.plugins):
        raise ConfigurationError(
            "KitConfig.metrics_port is set and the kit has a PrometheusExporter plugin too: "
            "keep one of them"
        )
    return (PrometheusExporter(host=config.metrics_host, port=config.metrics_port),)


def _checked_once(kit: KitData, spec: WorkerSpec) -> WorkerSpec:
    """Log the backend's start-up warnings here, once, and tell the workers not to repeat them."""
    if spec.startup_checked:
        return spec
    for warning in kit.backend.check():
        log.warning("%s", warning)
    return replace(spec, startup_checked=True)


@dataclass
class _Slot:
    process: Any
    started: float
    failures: int = 0
    restart_at: float | None = None
    done: bool = False
    #: asked to stop because ``should_restart`` said so: replace it when it exits
    recycling: bool = False
    #: the id and exit code of the process the next start replaces (for the restart hook)
    replaced: tuple[str, int | None] | None = None


class Supervisor:
    """Runs and restarts worker processes; ``run()`` returns after a bounded shutdown."""

    def __init__(
        self,
        kit: KitData,
        spec: WorkerSpec,
        *,
        start_method: str | None = None,
        polling_interval: float | None = None,
        should_restart: Callable[[Any], bool] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kit = kit
        self.spec = spec
        self.start_method = start_method
        self.interval = polling_interval or 1.0
        self.should_restart = should_restart
        # The clock of restart back-offs and the shutdown deadline; tests pass their own.
        self._monotonic = monotonic
        self._signals = 0
        self._wake_r, self._wake_w = os.pipe()
        self.supervisor_id = new_worker_id()
        #: Calls the supervision hooks (the config's plugins join the kit's in ``run``).
        self.hooks = kit.hook_caller

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def run(self) -> None:
        extra = config_plugins(self.kit)
        ctx = _context(self.start_method) if self.kit.backend.supports_processes else None
        # Once per supervisor: not again in every worker process, nor at every restart.
        self.spec = _checked_once(self.kit, self.spec)
        if extra:
            self.spec = replace(self.spec, plugins=(*self.spec.plugins, *extra))
            self.hooks = HookCaller.for_plugins((*self.kit.plugins, *self.spec.plugins))
        self.hooks.call(
            "taskkit_supervisor_started",
            supervisor_id=self.supervisor_id,
            groups=list(self.spec.threads),
            backend=self.kit.backend,
        )
        try:
            if ctx is None:
                self._run_in_this_process()
            else:
                self._run_processes(ctx)
        finally:
            self.hooks.call("taskkit_supervisor_stopped", supervisor_id=self.supervisor_id)

    def _run_processes(self, ctx: Any) -> None:
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            self._supervise(ctx)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _run_in_this_process(self) -> None:
        if self.spec.num_processes > 1:
            log.info(
                "backend %r lives in one process: running one worker in this process",
                self.kit.backend.name,
            )
        kit = self.kit
        if self.spec.plugins:  # the worker's hooks reach the config's plugins too
            kit = KitParts.of(
                kit.backend, kit.handler, kit.config, (*kit.plugins, *self.spec.plugins), kit.tasks
            )
        worker = Worker(kit, self.spec, new_worker_id(), in_child=False)
        if threading.current_thread() is threading.main_thread():
            worker.install_signal_handlers()
        worker.run()

    def _supervise(self, ctx: Any) -> None:
        slots = [
            _Slot(_spawn(self.kit, self.spec, ctx, daemon=True), self._monotonic())
            for _ in range(self.spec.num_processes)
        ]
        log.info("supervisor: started %d worker process(es)", len(slots))
        terminating_since: float | None = None
        deadline = float("inf")
        while True:
            waitables: list[Any] = [
                s.process.sentinel for s in slots if not s.done and s.restart_at is None
            ]
            waitables.append(self._wake_r)
            timeouts = [self.interval] + [
                max(0.0, s.restart_at - self._monotonic())
                for s in slots
                if s.restart_at is not None
            ]
            ready = multiprocessing.connection.wait(waitables, timeout=min(timeouts))
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            now = self._monotonic()

            if self._signals >= 1 and terminating_since is None:
                log.info(
                    "supervisor: shutting down (grace period %.0fs)", self.kit.config.grace_period
                )
                terminating_since = now
                deadline = now + self.kit.config.grace_period + 5.0
                for slot in slots:
                    slot.restart_at = None
                    if slot.process.is_alive():
                        slot.process.terminate()
            if terminating_since is not None and (self._signals >= 2 or now > deadline):
                self._kill_all(slots)
                return

            for slot in slots:
                if slot.done or slot.restart_at is not None or slot.process.is_alive():
                    continue
                slot.process.join(0)
                if terminating_since is not None:
                    slot.done = True
                    continue
                self._handle_death(slot)

            if terminating_since is None:
                self._recycle_if_asked(slots)

            for slot in slots:
                if (
                    slot.restart_at is not None
                    and now >= slot.restart_at
                    and terminating_since is None
                ):
                    self._restart(slot, ctx)

            if all(s.done for s in slots):
                log.info("supervisor: all workers stopped")
                return

    def _restart(self, slot: _Slot, ctx: Any) -> None:
        """Start the process that replaces the slot's dead (or recycled) one."""
        slot.restart_at = None
        slot.process = _spawn(self.kit, self.spec, ctx, daemon=True)
        slot.started = self._monotonic()
        log.info("supervisor: started worker %s", slot.process.worker_id)
        if slot.replaced is not None:
            replaced, code = slot.replaced
            slot.replaced = None
            self.hooks.call(
                "taskkit_worker_restarted",
                worker_id=slot.process.worker_id,
                replaced=replaced,
                exit_code=code,
            )

    def _handle_death(self, slot: _Slot) -> None:
        process = slot.process
        code = process.exitcode
        slot.replaced = (process.worker_id, code)
        if slot.recycling:
            slot.recycling = False
            log.info(
                "supervisor: worker %s stopped for a restart (exit code %s)",
                process.worker_id,
                code,
            )
            self._release(process.worker_id)
            slot.failures = 0
            slot.restart_at = self._monotonic()
            return
        if code == EXIT_OK:
            log.info("supervisor: worker %s exited after a shutdown request", process.worker_id)
            slot.done = True
            return
        log.warning("supervisor: worker %s died (exit code %s)", process.worker_id, code)
        self._release(process.worker_id)
        quick = self._monotonic() - slot.started < _QUICK_DEATH
        slot.failures = slot.failures + 1 if quick else 0
        delay = (
            0.0 if slot.failures == 0 else min(_RESTART_BACKOFF_MAX, 0.5 * 2 ** (slot.failures - 1))
        )
        if delay:
            log.warning("supervisor: worker keeps dying at start; restarting in %.1fs", delay)
        slot.restart_at = self._monotonic() + delay

    def _release(self, worker_id: str) -> None:
        try:
            released = self.kit.backend.release_worker(worker_id)
            if released:
                log.info("supervisor: released %d lease(s) of %s", released, worker_id)
        except Exception:
            log.exception("supervisor: could not release the leases of %s", worker_id)

    def _recycle_if_asked(self, slots: list[_Slot]) -> None:
        """Stop, gracefully, each live process that ``should_restart`` picks (0.2's meaning).

        A dead process is always replaced; ``should_restart(process) -> True`` additionally
        replaces a live one (e.g. one that grew too large). The process gets the usual
        graceful stop and is started anew when it has exited.
        """
        if self.should_restart is None:
            return
        for slot in slots:
            if slot.done or slot.recycling or slot.restart_at is not None:
                continue
            if not slot.process.is_alive():
                continue
            try:
                wanted = self.should_restart(slot.process)
            except Exception:
                log.exception("supervisor: should_restart raised; the process keeps running")
                continue
            if wanted:
                log.info(
                    "supervisor: restarting worker %s (should_restart)", slot.process.worker_id
                )
                slot.recycling = True
                slot.process.terminate()

    def _kill_all(self, slots: list[_Slot]) -> None:
        for slot in slots:
            if slot.process.is_alive():
                log.warning("supervisor: killing worker %s", slot.process.worker_id)
                slot.process.kill()
        for slot in slots:
            slot.process.join(5.0)
            try:
                self.kit.backend.release_worker(slot.process.worker_id)
            except Exception:
                log.exception(
                    "supervisor: could not release the leases of %s", slot.process.worker_id
                )
