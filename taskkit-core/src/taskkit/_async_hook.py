"""The ``taskkit_execute_task`` hook around a handler whose value is awaited on the loop.

pluggy calls a hook synchronously, so a coroutine cannot run inside a pluggy call without a
thread that waits for it. :func:`execute_awaiting` calls the hook's implementations as
pluggy's own call does (wrappers outermost, the last registered first; the first non-None
value of a plain implementation wins, as ``firstresult`` says), but awaits that value before
the wrappers resume. So a wrapper's code after ``yield`` runs once the coroutine has
finished, receives its value or has its exception thrown in, and may replace either,
exactly as around a thread's handler: timing, tracing and metering plugins need no async
variant. Wrappers run on the loop's thread, between the coroutine's steps only at the one
``await``; a plugin that keeps per-task state in a ``ContextVar`` sees each task's own.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any

import pluggy

__all__ = ["execute_awaiting"]

Teardown = Generator[None, Any, Any]


async def execute_awaiting(
    hook: Any, kwargs: Mapping[str, object], settle: Callable[[Awaitable[Any]], Awaitable[Any]]
) -> Any:
    """Call the firstresult ``hook`` with ``kwargs``; an awaitable value is awaited through
    ``settle(value)`` before the wrappers' teardowns run. Returns what the outermost wrapper
    returns; raises what it raises."""
    teardowns: list[Teardown] = []
    result: Any = None
    exception: BaseException | None = None
    try:
        for impl in reversed(hook.get_hookimpls()):
            args = [kwargs[name] for name in impl.argnames]
            extra = {name: kwargs[name] for name in impl.kwargnames if name in kwargs}
            if impl.hookwrapper:
                teardown = _old_style(impl.function(*args, **extra))
            elif impl.wrapper:
                teardown = impl.function(*args, **extra)
            else:
                value = impl.function(*args, **extra)
                if value is not None:
                    result = value
                    break
                continue
            try:
                next(teardown)
            except StopIteration:
                raise RuntimeError(f"wrap_controller {impl.function!r} did not yield") from None
            teardowns.append(teardown)
        if inspect.isawaitable(result):
            result = await settle(result)
    except BaseException as exc:
        exception = exc
    for teardown in reversed(teardowns):
        try:
            if exception is not None:
                teardown.throw(exception)
            else:
                teardown.send(result)
            teardown.close()
        except StopIteration as stop:
            result, exception = stop.value, None
            continue
        except BaseException as exc:
            exception = exc
            continue
        exception = RuntimeError(f"wrap_controller {teardown!r} has a second yield")
    if exception is not None:
        raise exception
    return result


def _old_style(wrapper: Generator[None, pluggy.Result[Any], None]) -> Teardown:
    """An old-style ``hookwrapper=True`` generator (it receives a :class:`pluggy.Result`) as a
    new-style one, as pluggy adapts them."""
    next(wrapper)
    try:
        value = yield
        outcome: pluggy.Result[Any] = pluggy.Result(value, None)
    except BaseException as exc:
        outcome = pluggy.Result(None, exc)
    try:
        wrapper.send(outcome)
    except StopIteration:
        pass
    else:
        raise RuntimeError("an old-style hookwrapper has a second yield")
    return outcome.get_result()
