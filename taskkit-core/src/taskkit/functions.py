"""Function tasks: ``@kit.task`` turns a plain or ``async def`` function into a task.

::

    @kit.task(group="mail", retries=5, timeout=30)
    def send(to: str, subject: str = "") -> dict: ...

    send.delay("ada@example.com", subject="hi")      # Result[dict]
    send("ada@example.com")                          # a plain call runs it inline

A function task's stored data is ``{"args": [...], "kwargs": {...}}`` encoded with the task's
serializer (the kit handler's unless ``serializer=`` names another), so a schedule entry or
``kit.initiate_task(group, name, data)`` reaches it with ``data={"args": [...]}``. Arguments
are checked against the function's signature and encoded before anything is written.

Options are resolved once, at decoration; :meth:`TaskFunction.initiate` takes the per-call
ones (due time, id, ttl, timeout).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from ._task import DEFAULT_TTL, Task
from ._validation import validate_name
from .errors import ConfigurationError, InvalidTask
from .handler import TaskHandler
from .plugins import registries
from .retry import ExceptionTypes, ExponentialBackoff, RetryPolicy, exception_types, is_retryable
from .serializers import Serializer

if TYPE_CHECKING:
    from ._result import Result

__all__ = [
    "DEFAULT_GROUP",
    "AsyncTaskFunction",
    "TaskDecorator",
    "TaskFunction",
    "TaskOptions",
    "TaskRegistry",
]

P = ParamSpec("P")
R = TypeVar("R")

#: The group of a function task that names none.
DEFAULT_GROUP = "default"


class TaskProducer(Protocol):
    """What a function task needs of its kit (a :class:`~taskkit.Kit` is one)."""

    @property
    def handler(self) -> TaskHandler: ...

    def make_task(
        self,
        group: str,
        name: str,
        data: Any,
        due: datetime | float | None = None,
        ttl: float = DEFAULT_TTL,
        *,
        timeout: float | None = None,
        task_id: str | None = None,
        encoded: bool = False,
        now: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Task: ...

    async def abackend_now(self) -> float: ...

    def _initiate(self, task: Task, eager: bool) -> Result[Any]: ...

    async def _ainitiate(self, task: Task) -> Result[Any]: ...


class ArgumentsMismatch(Exception):
    """A task's stored arguments do not fit its function (or do not decode).

    Internal: a programming error (the function's signature changed, or the data was written
    by hand), so the task fails at once instead of being retried.
    """


@dataclass(frozen=True)
class TaskOptions:
    """The per-task options of a function task, resolved at decoration.

    :ivar timeout: run-time limit in seconds (None: the kit's ``default_timeout``).
    :ivar ttl: seconds the finished record and result are kept.
    :ivar retry_policy: the policy deciding retries (``retries=`` sets its ``max_retries``).
    :ivar retry_on: retry only after these exceptions.
    :ivar retry_unless: never retry after these.
    :ivar max_deliveries: deliveries of one attempt that may end with a lost worker before the
        task becomes a dead letter; None: the kit's. It can only lower the kit's value (the
        backend dead-letters at the kit's limit before a worker sees the task).
    :ivar serializer: the registered serializer of its arguments and result (None: the kit
        handler's).
    """

    timeout: float | None = None
    ttl: float = DEFAULT_TTL
    retry_policy: RetryPolicy = dataclasses.field(default_factory=ExponentialBackoff)
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    retry_unless: tuple[type[BaseException], ...] = ()
    max_deliveries: int | None = None
    serializer: str | None = None


def _positive_seconds(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{what} must be a positive number of seconds, not {value!r}")
    return float(value)


def make_options(
    *,
    timeout: float | None = None,
    ttl: float | None = None,
    retries: int | None = None,
    retry_policy: RetryPolicy | str | None = None,
    retry_on: ExceptionTypes = (Exception,),
    retry_unless: ExceptionTypes = (),
    max_deliveries: int | None = None,
    serializer: str | None = None,
) -> TaskOptions:
    """Check the decorator's options and resolve them into :class:`TaskOptions`.

    :raises ConfigurationError: a bad option, naming it.
    """
    if timeout is not None:
        timeout = _positive_seconds("timeout", timeout)
    ttl = DEFAULT_TTL if ttl is None else _positive_seconds("ttl", ttl)
    policy = _resolve_policy(retry_policy, retries)
    try:
        on = exception_types(retry_on, "retry_on")
        unless = exception_types(retry_unless, "retry_unless")
    except TypeError as exc:
        raise ConfigurationError(str(exc)) from None
    if max_deliveries is not None and (
        isinstance(max_deliveries, bool)
        or not isinstance(max_deliveries, int)
        or max_deliveries < 1
    ):
        raise ConfigurationError(f"max_deliveries must be an int >= 1, not {max_deliveries!r}")
    if serializer is not None:
        registries().serializers.get(serializer)  # ConfigurationError for an unknown name
    return TaskOptions(timeout, ttl, policy, on, unless, max_deliveries, serializer)


def _resolve_policy(policy: RetryPolicy | str | None, retries: int | None) -> RetryPolicy:
    if isinstance(policy, str):
        policy = registries().retry_policies.get(policy)()
    elif policy is None:
        policy = ExponentialBackoff()
    elif not isinstance(policy, RetryPolicy):
        raise ConfigurationError(
            f"retry_policy must be a RetryPolicy or a registered policy's name, not {policy!r}"
        )
    if retries is None:
        return policy
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"retries must be an int >= 0, not {retries!r}")
    if not (dataclasses.is_dataclass(policy) and hasattr(policy, "max_retries")):
        raise ConfigurationError(
            f"retries= needs a policy with a max_retries field; {type(policy).__name__} has "
            "none (set its limit on the policy itself)"
        )
    return dataclasses.replace(policy, max_retries=retries)


class _BaseTaskFunction(Generic[P, R]):
    """What sync and async function tasks share: enqueueing, encoding and running."""

    def __init__(
        self,
        kit: TaskProducer,
        fn: Callable[..., Any],
        group: str,
        name: str,
        options: TaskOptions,
    ) -> None:
        #: The kit it enqueues on (None only while an unpickled copy awaits its kit).
        self.kit = kit
        self.fn = fn
        self.group = validate_name("group", group)
        self.name = validate_name("task name", name)
        self.options = options
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self.__module__ = fn.__module__
        self.__qualname__ = fn.__qualname__
        self.__name__ = fn.__name__

    def __repr__(self) -> str:
        kind = "async " if self.is_async else ""
        return f"<{kind}task {self.group}/{self.name}>"

    @property
    def is_async(self) -> bool:
        """True for an ``async def`` function (the worker runs it on its event loop)."""
        return False

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled like a function, by reference: a ``spawn`` child imports the module, which
        # decorates the function again on its own kit. A function registered on a kit by a
        # call (``kit.task(group=g)(fn)``) is rebuilt around ``fn`` imported by name, and
        # the unpickled kit adopts it (see ``Kit.__reduce__``).
        found = _lookup(self.__module__, self.__qualname__)
        if found is self:
            return (_import_task, (self.__module__, self.__qualname__))
        if found is self.fn:
            return (_rebuild_task, (type(self), self.fn, self.group, self.name, self.options))
        raise TypeError(
            f"task {self.group}/{self.name} cannot be pickled: define its function at module "
            "level (spawn and forkserver workers import it by name)"
        )

    # ------------------------------------------------------------------ encoding

    def serializer(self) -> Serializer:
        """The serializer of this task's arguments and result."""
        name = self.options.serializer or self.kit.handler.serializer
        return registries().serializers.get(name)()

    def encode_call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
        """Check ``args``/``kwargs`` against the signature and encode them.

        :raises InvalidTask: a wrong arity or keyword, or an argument the serializer cannot
            encode; the message names the task and the argument. Nothing was written.
        """
        if not isinstance(args, (list, tuple)):
            raise InvalidTask(
                f"task {self}: args must be a list or tuple, not {type(args).__name__}"
            )
        if not isinstance(kwargs, Mapping):
            raise InvalidTask(f"task {self}: kwargs must be a mapping, not {type(kwargs).__name__}")
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidTask(f"task {self}: {exc} (signature {self._signature_text()})") from None
        serializer = self.serializer()
        payload = {"args": list(args), "kwargs": dict(kwargs)}
        try:
            encoded = serializer.dumps(payload)
        except Exception as exc:
            raise InvalidTask(self._unencodable(serializer, bound.arguments, exc)) from exc
        if not isinstance(encoded, bytes):
            raise InvalidTask(f"task {self}: serializer {serializer.name!r} returned no bytes")
        return encoded

    def encode_data(self, data: Any) -> bytes:
        """Encode ``data`` given as ``{"args": [...], "kwargs": {...}}`` (a schedule entry's or
        ``kit.initiate_task``'s data for a function task)."""
        if not isinstance(data, Mapping) or not set(data) <= {"args", "kwargs"}:
            raise InvalidTask(
                f"task {self} takes data {{'args': [...], 'kwargs': {{...}}}}, not {data!r}"
            )
        return self.encode_call(data.get("args", ()), data.get("kwargs", {}))

    def _unencodable(
        self, serializer: Serializer, arguments: Mapping[str, Any], exc: Exception
    ) -> str:
        for name, value in arguments.items():
            try:
                serializer.dumps(value)
            except Exception as inner:
                return (
                    f"task {self}: argument {name!r} cannot be encoded by the "
                    f"{serializer.name!r} serializer: {type(inner).__name__}: {inner}"
                )
        return (
            f"task {self}: its arguments cannot be encoded by the {serializer.name!r} "
            f"serializer: {type(exc).__name__}: {exc}"
        )

    def _signature_text(self) -> str:
        return f"{self.__name__}{self.signature}"

    def decode_call(self, task: Task) -> tuple[list[Any], dict[str, Any]]:
        """The stored arguments of ``task``, checked against the signature.

        :raises ArgumentsMismatch: they do not decode, or do not fit the function.
        """
        try:
            payload = self.serializer().loads(task.data)
        except Exception as exc:
            raise ArgumentsMismatch(
                f"task {self}: its data does not decode: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(payload, Mapping) or not set(payload) <= {"args", "kwargs"}:
            raise ArgumentsMismatch(
                f"task {self}: its data is not {{'args', 'kwargs'}}: {payload!r}"
            )
        args = payload.get("args", [])
        kwargs = payload.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, Mapping):
            raise ArgumentsMismatch(f"task {self}: malformed args/kwargs: {payload!r}")
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentsMismatch(
                f"task {self}: its stored arguments do not fit {self._signature_text()}: {exc}"
            ) from None
        return args, dict(kwargs)

    def run(self, task: Task) -> Any:
        """Run the function on ``task``'s arguments (a coroutine for an async function)."""
        args, kwargs = self.decode_call(task)
        return self.fn(*args, **kwargs)

    def retry_interval(self, task: Task, exception: Exception) -> float | None:
        """Seconds before the next attempt after ``exception``, or None to fail the task."""
        if isinstance(exception, ArgumentsMismatch):
            return None  # a programming error: retrying cannot help
        options = self.options
        if not is_retryable(exception, options.retry_on, options.retry_unless):
            return None
        return options.retry_policy.next_interval(task, exception)

    def __str__(self) -> str:
        return f"{self.group}/{self.name}"

    # ------------------------------------------------------------------ producing

    def make_task(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        due: datetime | float | None = None,
        ttl: float | None = None,
        timeout: float | None = None,
        task_id: str | None = None,
        now: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Task:
        """A validated, encoded task for these arguments, not stored (for
        ``kit.initiate_tasks``; ``now``: the backend time to stamp, as for
        :meth:`taskkit.Kit.make_task`).

        :raises InvalidTask: bad arguments (see :meth:`encode_call`), id, due, ttl or headers.
        """
        data = self.encode_call(args, kwargs or {})
        return self.kit.make_task(
            self.group,
            self.name,
            data,
            due,
            self.options.ttl if ttl is None else ttl,
            timeout=self.options.timeout if timeout is None else timeout,
            task_id=task_id,
            encoded=True,
            now=now,
            headers=headers,
        )

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Result[R]:
        """Enqueue a call with these arguments, due now; returns a handle on its result.

        :raises InvalidTask: the arguments do not fit the function or cannot be encoded;
            nothing was written.
        """
        return self.initiate(args, kwargs)

    def initiate(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        due: datetime | float | None = None,
        ttl: float | None = None,
        timeout: float | None = None,
        task_id: str | None = None,
        eager: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Result[R]:
        """Enqueue a call with per-call options (see :meth:`taskkit.Kit.initiate_task`).

        :param due: run no earlier than this (datetime or epoch seconds).
        :param ttl: seconds the finished record is kept (default: the task's).
        :param timeout: run-time limit (default: the task's).
        :param task_id: your own id, for idempotent enqueue.
        :param headers: ``str -> str`` headers stored with the task (the limits of
            :meth:`taskkit.Kit.initiate_task`), read in the function as
            ``current_task().task.headers``.
        :param eager: run it now in this thread, as a worker would, storing nothing (an
            async task runs on a fresh event loop).
        :raises InvalidTask: bad arguments or options; nothing was written.
        :raises ConfigurationError: ``eager=True`` for an async task on a thread that runs
            an event loop (await the function itself there).
        """
        task = self.make_task(
            args, kwargs, due=due, ttl=ttl, timeout=timeout, task_id=task_id, headers=headers
        )
        return self.kit._initiate(task, eager)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> Result[R]:
        """:meth:`delay` for async code: the write does not block the event loop."""
        return await self.ainitiate(args, kwargs)

    async def ainitiate(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        due: datetime | float | None = None,
        ttl: float | None = None,
        timeout: float | None = None,
        task_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Result[R]:
        """:meth:`initiate` for async code (no ``eager``: await the function instead)."""
        now = await self.kit.abackend_now()
        task = self.make_task(
            args,
            kwargs,
            due=due,
            ttl=ttl,
            timeout=timeout,
            task_id=task_id,
            now=now,
            headers=headers,
        )
        return await self.kit._ainitiate(task)


class TaskFunction(_BaseTaskFunction[P, R]):
    """A plain function registered as a task (``@kit.task``).

    Calling it runs the function inline; :meth:`delay` and :meth:`initiate` enqueue it.
    """

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self.fn(*args, **kwargs)
        return result


class AsyncTaskFunction(_BaseTaskFunction[P, R]):
    """An ``async def`` function registered as a task: workers run it on their event loop.

    Calling it returns the coroutine, as calling the function would; :meth:`delay`,
    :meth:`adelay` and :meth:`initiate` enqueue it, and its result decodes to ``R``.
    """

    @property
    def is_async(self) -> bool:
        return True

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        coroutine: Coroutine[Any, Any, R] = self.fn(*args, **kwargs)
        return coroutine


AnyTaskFunction = _BaseTaskFunction[Any, Any]


class TaskDecorator(Protocol):
    """What ``kit.task(...)`` with options returns: it decorates a sync or async function."""

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncTaskFunction[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> TaskFunction[P, R]: ...


class TaskRegistry:
    """A kit's function tasks by (group, name)."""

    def __init__(self, tasks: Sequence[AnyTaskFunction] = ()) -> None:
        self._tasks: dict[tuple[str, str], AnyTaskFunction] = {}
        for task in tasks:
            self.add(task)

    def add(self, task: AnyTaskFunction) -> None:
        """Register ``task``.

        :raises ConfigurationError: another function already has its group and name.
        """
        key = (task.group, task.name)
        known = self._tasks.get(key)
        if known is not None and not _same_function(known.fn, task.fn):
            raise ConfigurationError(
                f"task {task.group}/{task.name} is already {known.__module__}."
                f"{known.__qualname__}; give {task.__module__}.{task.__qualname__} another "
                "name= or group="
            )
        self._tasks[key] = task

    def find(self, group: str, name: str) -> AnyTaskFunction | None:
        """The function task of (``group``, ``name``), or None."""
        return self._tasks.get((group, name))

    def groups(self) -> list[str]:
        """The groups that have function tasks, sorted."""
        return sorted({group for group, _ in self._tasks})

    def in_group(self, group: str) -> list[AnyTaskFunction]:
        """The function tasks of ``group``."""
        return [task for (g, _), task in self._tasks.items() if g == group]

    def __iter__(self) -> Iterator[AnyTaskFunction]:
        return iter(list(self._tasks.values()))

    def __len__(self) -> int:
        return len(self._tasks)

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskRegistry, (list(self._tasks.values()),))


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """The same function, or its redefinition (a module imported again, ``__main__`` and its
    import as a module)."""
    return a is b or (
        getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
        and getattr(a, "__code__", None) is not None
        and getattr(a, "__code__", None).co_filename  # type: ignore[union-attr]
        == getattr(getattr(b, "__code__", None), "co_filename", None)
    )


def _lookup(module: str, qualname: str) -> Any:
    """The object at ``module``.``qualname`` (None when it cannot be found)."""
    obj: Any = sys.modules.get(module)
    if obj is None:
        try:
            obj = importlib.import_module(module)
        except ImportError:
            return None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _rebuild_task(
    cls: type[AnyTaskFunction],
    fn: Callable[..., Any],
    group: str,
    name: str,
    options: TaskOptions,
) -> AnyTaskFunction:
    """Unpickle a function task registered by a call: without a kit until one adopts it."""
    return cls(None, fn, group, name, options)  # type: ignore[arg-type]


def _import_task(module: str, qualname: str) -> AnyTaskFunction:
    """Unpickle a function task: import it by name (``spawn`` workers)."""
    task = _lookup(module, qualname)
    if not isinstance(task, _BaseTaskFunction):
        raise ImportError(f"no function task {module}.{qualname} to import")
    return task


def task_function(
    kit: TaskProducer,
    fn: Callable[..., Any],
    *,
    group: str | None,
    name: str | None,
    options: TaskOptions,
) -> AnyTaskFunction:
    """Wrap ``fn`` as a sync or async task of ``kit`` (what ``@kit.task`` does)."""
    if not callable(fn) or isinstance(fn, _BaseTaskFunction):
        raise ConfigurationError(f"@kit.task decorates a function, not {fn!r}")
    cls: type[AnyTaskFunction] = (
        AsyncTaskFunction if inspect.iscoroutinefunction(fn) else TaskFunction
    )
    try:
        return cls(kit, fn, group or DEFAULT_GROUP, name or fn.__qualname__, options)
    except InvalidTask as exc:
        raise ConfigurationError(f"@kit.task on {fn.__qualname__}: {exc}") from None
