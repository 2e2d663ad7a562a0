"""Running one task in the caller's thread (``eager=True``) the way a worker runs it.

What a worker does around a handler, minus the backend: the ``taskkit_execute_task`` wrapper,
the lifecycle hooks (``taskkit_task_started`` with worker id ``"eager"``, then exactly one of
``succeeded``, ``failed`` or ``discarded``), a :func:`~taskkit.context.current_task` context
with the task's time limit, and the result's encode/decode round trip under
``max_result_size``. The outcome is an :class:`~taskkit._task.Outcome` as a backend would
store it, so ``Result.get`` raises the same errors as for a task a worker ran.

Differences from a worker, by design:

* **One attempt.** A failure is final: ``get_retry_interval`` is not asked and
  ``taskkit_task_retried`` never fires (as taskkit 0.2's eager mode, which failed at once;
  running retries inline would either sleep the caller through the back-off or ignore the
  delays a retry policy exists for).
* **Time limits are cooperative.** ``current_task().check()`` raises ``TaskTimeout`` past the
  limit, but nothing interrupts a handler that does not call it: the caller's thread is not
  a worker's to interrupt.
* **No cancel.** An eager task is never stored, so nothing can ask it to stop.
* ``KeyboardInterrupt`` propagates to the caller (its Ctrl-C), where a worker would fail
  the task.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable
from typing import Any

from ._encoding import ResultNotEncodable, encode_result
from ._kitdata import KitData
from ._result import EagerRun
from ._task import Outcome, Task, TaskState
from ._validation import truncate_text
from ._worker import stored_traceback
from .context import TaskContext, _set_current, current_task
from .errors import (
    ConfigurationError,
    DiscardTask,
    PayloadTooLarge,
    TaskCancelled,
    TaskTimeout,
)

__all__ = ["EAGER_WORKER_ID", "EagerRun", "run_eagerly"]

#: The ``worker_id`` that lifecycle hooks receive for a task run eagerly.
EAGER_WORKER_ID = "eager"


def run_eagerly(kit: KitData, task: Task) -> EagerRun:
    """Run ``task`` now, in this thread, as a worker would (see the module docstring)."""
    _refuse_async_in_a_running_loop(kit, task)
    config = kit.config
    timeout = task.timeout or config.default_timeout
    context = TaskContext(task)
    if timeout is not None:
        context.deadline = time.monotonic() + timeout
    previous = current_task()  # a worker's handler may run an eager task: restore its context
    _set_current(context)
    try:
        kit.hook_caller.call("taskkit_task_started", task=task, worker_id=EAGER_WORKER_ID)
        started = time.monotonic()
        try:
            value = kit.hook_caller.hook.taskkit_execute_task(
                task=task, call=lambda: _resolved(kit.router.handle(task))
            )
        except KeyboardInterrupt:
            raise
        except TaskCancelled as exc:
            return _finish(kit, task, TaskState.CANCELLED, "cancelled", exc)
        except TaskTimeout as exc:
            return _fail(kit, task, f"timed out after {timeout}s", None, exc)
        except DiscardTask as exc:
            reason = str(exc) or "discarded by the handler"
            kit.hook_caller.call("taskkit_task_discarded", task=task, reason=reason)
            return _finish(kit, task, TaskState.DISCARDED, reason, exc)
        except BaseException as exc:
            text = stored_traceback(exc, config.max_error_size)
            return _fail(kit, task, text, exc, exc)
        duration = time.monotonic() - started
        try:
            encoded = encode_result(kit.router, task, value, config.max_result_size)
        except PayloadTooLarge as exc:
            return _fail(kit, task, f"result too large: {exc}", exc, exc)
        except ResultNotEncodable as exc:
            return _fail(kit, task, truncate_text(str(exc), config.max_error_size), exc, exc)
        try:
            decoded = kit.router.decode_result(task, encoded)
        except Exception as exc:
            message = "result could not be encoded: it does not decode again:\n" + stored_traceback(
                exc, config.max_error_size
            )
            return _fail(kit, task, truncate_text(message, config.max_error_size), exc, exc)
        kit.hook_caller.call("taskkit_task_succeeded", task=task, duration=duration)
        outcome = Outcome(task, TaskState.SUCCEEDED, result=encoded, finished=kit.backend_now())
        return EagerRun(outcome, decoded)
    finally:
        _set_current(previous)


def _refuse_async_in_a_running_loop(kit: KitData, task: Task) -> None:
    """An async task cannot run eagerly on a thread that already runs an event loop (it would
    need a loop of its own there): say so before anything runs.

    :raises ConfigurationError: that is the case.
    """
    is_async = getattr(kit.router, "is_async_task", None)
    if is_async is None or not is_async(task):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise ConfigurationError(
        f"the async task {task.group}/{task.name} cannot run eagerly inside a running event "
        "loop; await the function itself instead"
    )


def _resolved(value: Any) -> Any:
    """``value``, or what it resolves to when it is awaitable (an ``async def`` task run
    eagerly: on a fresh event loop, as ``asyncio.run`` does).

    :raises ConfigurationError: this thread already runs an event loop (await the function,
        or ``ainitiate``, instead of running it eagerly there).
    """
    if not inspect.isawaitable(value):
        return value
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(value))
    if inspect.iscoroutine(value):
        value.close()  # not awaited on purpose: no "never awaited" warning
    raise ConfigurationError(
        "an async task cannot run eagerly inside a running event loop; await the function "
        "itself instead"
    )


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


def _fail(
    kit: KitData, task: Task, message: str, hook_exc: BaseException | None, exc: BaseException
) -> EagerRun:
    kit.hook_caller.call("taskkit_task_failed", task=task, exception=hook_exc, message=message)
    return _finish(kit, task, TaskState.FAILED, message, exc)


def _finish(kit: KitData, task: Task, state: TaskState, error: str, exc: BaseException) -> EagerRun:
    outcome = Outcome(task, state, error=error, finished=kit.backend_now())
    return EagerRun(outcome, None, exc)
