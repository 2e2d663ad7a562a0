"""``taskkit.functions``: ``@kit.task``, its options, argument checks, registry and pickling."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import taskkit
from taskkit import (
    AsyncTaskFunction,
    ConfigurationError,
    ExponentialBackoff,
    InvalidTask,
    Kit,
    TaskFunction,
    TaskHandler,
    TaskState,
    make_kit,
)
from taskkit.memory import MemoryBackend

from . import module_tasks


@pytest.fixture
def kit() -> Kit:
    return Kit(MemoryBackend())


def test_a_bare_decorator_names_the_task_after_the_function(kit: Kit) -> None:
    @kit.task
    def send(to: str) -> str:
        return to

    assert isinstance(send, TaskFunction)
    assert (send.group, send.name) == ("default", send.__qualname__)
    assert send.__qualname__.endswith("<locals>.send")
    assert kit.tasks.find("default", send.name) is send


def test_group_and_name_override_the_defaults(kit: Kit) -> None:
    @kit.task(group="mail", name="send-mail")
    def send(to: str) -> str:
        return to

    assert (send.group, send.name) == ("mail", "send-mail")
    assert kit.tasks.groups() == ["mail"]


def test_a_plain_call_runs_the_function_inline_and_stores_nothing(kit: Kit) -> None:
    @kit.task
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    assert kit.backend.stats("default").queued == 0


def test_delay_stores_the_call_and_get_decodes_the_result(kit: Kit) -> None:
    @kit.task(group="math")
    def add(a: int, b: int = 10) -> int:
        return a + b

    result = add.delay(1, b=2)
    outcome = kit.backend.get_outcome(result.id)
    assert outcome is not None and outcome.state is TaskState.QUEUED
    assert add.decode_call(outcome.task) == ([1], {"b": 2})
    assert kit.router.handle(outcome.task) == 3


def test_initiate_takes_per_call_options(kit: Kit) -> None:
    @kit.task(timeout=30, ttl=60)
    def add(a: int, b: int) -> int:
        return a + b

    due = kit.backend_now() + 3600
    result = add.initiate(args=(1, 2), due=due, task_id="welcome-ada", ttl=3600)
    task = kit.backend.get_outcome("welcome-ada").task  # type: ignore[union-attr]
    assert result.id == "welcome-ada"
    assert (task.due, task.ttl, task.timeout) == (pytest.approx(due), 3600.0, 30.0)
    default = kit.backend.get_outcome(add.delay(1, 2).id).task  # type: ignore[union-attr]
    assert (default.ttl, default.timeout) == (60.0, 30.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        ((1,), {}, "missing a required argument: 'b'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1, 2), {"c": 3}, "unexpected keyword argument 'c'"),
        ((1, {1}), {}, "argument 'b' cannot be encoded by the 'json' serializer"),
        ((object(), 2), {}, "argument 'a' cannot be encoded"),
    ],
)
def test_a_bad_call_raises_invalid_task_naming_task_and_argument_and_writes_nothing(
    kit: Kit, args: tuple[Any, ...], kwargs: dict[str, Any], words: str
) -> None:
    @kit.task(group="math", name="add")
    def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(InvalidTask) as info:
        add.initiate(args=args, kwargs=kwargs, task_id="refused")
    assert "math/add" in str(info.value) and words in str(info.value)
    assert kit.backend.get_outcome("refused") is None
    assert kit.backend.stats("math").queued == 0


def test_initiate_task_with_args_data_reaches_a_function_task(kit: Kit) -> None:
    @kit.task(group="math", name="add")
    def add(a: int, b: int) -> int:
        return a + b

    result = kit.initiate_task("math", "add", {"args": [1], "kwargs": {"b": 2}})
    task = kit.backend.get_outcome(result.id).task  # type: ignore[union-attr]
    assert kit.router.handle(task) == 3
    with pytest.raises(InvalidTask, match="takes data"):
        kit.initiate_task("math", "add", {"a": 1, "b": 2})
    with pytest.raises(InvalidTask, match="missing a required argument"):
        kit.initiate_task("math", "add", {"args": [1]})


def test_arguments_that_no_longer_fit_fail_without_a_retry(kit: Kit) -> None:
    @kit.task(group="math", name="add", retries=5)
    def add(a: int, b: int) -> int:
        return a + b

    task = kit.make_task("math", "add", b'{"args": [1, 2, 3]}', encoded=True)
    with pytest.raises(Exception, match="do not fit") as info:
        kit.router.handle(task)
    assert kit.router.get_retry_interval(task, info.value) is None  # type: ignore[arg-type]
    undecodable = kit.make_task("math", "add", b"\xff not json", encoded=True)
    with pytest.raises(Exception, match="does not decode") as info:
        kit.router.handle(undecodable)
    assert kit.router.get_retry_interval(undecodable, info.value) is None  # type: ignore[arg-type]


def test_retries_sets_the_policys_limit(kit: Kit) -> None:
    @kit.task(retries=2)
    def flaky() -> None:
        raise ConnectionError("down")

    assert flaky.options.retry_policy == ExponentialBackoff(max_retries=2)
    task = kit.make_task("default", flaky.name, {"args": []})
    assert flaky.retry_interval(task, ConnectionError()) is not None
    assert flaky.retry_interval(task.evolve(retry_count=2), ConnectionError()) is None


def test_retry_on_and_retry_unless_filter_exceptions(kit: Kit) -> None:
    @kit.task(retry_on=(ConnectionError,))
    def only_connection() -> None: ...

    @kit.task(retry_unless=(ValueError,))
    def not_value() -> None: ...

    task = kit.make_task("default", only_connection.name, {"args": []})
    assert only_connection.retry_interval(task, ConnectionError()) is not None
    assert only_connection.retry_interval(task, KeyError()) is None
    assert not_value.retry_interval(task, KeyError()) is not None
    assert not_value.retry_interval(task, ValueError()) is None


def test_a_named_retry_policy_is_resolved_at_decoration(kit: Kit) -> None:
    @kit.task(retry_policy="none")
    def once() -> None: ...

    task = kit.make_task("default", once.name, {"args": []})
    assert once.retry_interval(task, RuntimeError()) is None


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"ttl": -1}, "ttl must be a positive number"),
        ({"retries": -1}, "retries must be an int >= 0"),
        ({"retry_policy": "no-such-policy"}, "no-such-policy"),
        ({"retry_policy": object()}, "retry_policy must be"),
        ({"retry_on": (int,)}, "retry_on must be an exception class"),
        ({"max_deliveries": 0}, "max_deliveries must be an int >= 1"),
        ({"serializer": "no-such-serializer"}, "no-such-serializer"),
        ({"group": "bad:group"}, "group"),
    ],
)
def test_bad_options_raise_configuration_error_and_register_nothing(
    kit: Kit, options: dict[str, Any], words: str
) -> None:
    def fn() -> None: ...

    with pytest.raises(ConfigurationError, match=words):
        kit.task(**options)(fn)
    assert len(kit.tasks) == 0


def test_retries_needs_a_policy_with_a_limit(kit: Kit) -> None:
    class Custom:
        name = "custom"

        def next_interval(self, task: Any, exception: BaseException) -> float | None:
            return None

    with pytest.raises(ConfigurationError, match="max_retries"):
        kit.task(retries=1, retry_policy=Custom())(lambda: None)


def test_two_functions_cannot_share_a_group_and_name(kit: Kit) -> None:
    @kit.task(name="job")
    def first() -> None: ...

    def second() -> None: ...

    with pytest.raises(ConfigurationError, match="already"):
        kit.task(name="job")(second)
    assert kit.tasks.find("default", "job") is first


def test_function_tasks_and_a_handler_share_a_kit() -> None:
    class Handler(TaskHandler):
        def handle(self, task: Any) -> Any:
            return ("handler", self.decode_data(task))

    kit = Kit(MemoryBackend(), Handler())

    @kit.task(group="functions", name="f")
    def f(x: int) -> tuple[str, int]:
        return ("function", x)

    by_function = kit.backend.get_outcome(f.delay(1).id).task  # type: ignore[union-attr]
    by_handler = kit.backend.get_outcome(  # type: ignore[union-attr]
        kit.initiate_task("legacy", "f", {"x": 1}).id
    ).task
    assert kit.router.handle(by_function) == ("function", 1)
    assert kit.router.handle(by_handler) == ("handler", {"x": 1})


def test_a_kit_without_a_handler_calls_unknown_names_unknown(kit: Kit) -> None:
    task = kit.make_task("nobody", "knows", None)
    with pytest.raises(taskkit.UnknownTask, match="nobody/knows"):
        kit.router.handle(task)
    assert issubclass(taskkit.UnknownTask, taskkit.DiscardTask)


def test_make_kit_needs_no_handler() -> None:
    kit = make_kit("memory://")
    assert isinstance(kit.handler, TaskHandler)


def test_an_async_function_becomes_an_async_task(kit: Kit) -> None:
    @kit.task(group="crawl")
    async def fetch(url: str) -> int:
        return len(url)

    assert isinstance(fetch, AsyncTaskFunction) and fetch.is_async
    assert kit.router.is_async_group("crawl")  # type: ignore[attr-defined]
    assert not kit.router.is_async_group("other")  # type: ignore[attr-defined]
    assert fetch.initiate(args=("abc",), eager=True).get() == 3


def test_eager_runs_make_the_encode_decode_round_trip(kit: Kit) -> None:
    @kit.task
    def pair() -> tuple[int, int]:
        return (1, 2)

    assert pair.initiate(eager=True).get() == [1, 2]  # what a worker's run would return


def test_a_module_level_task_pickles_by_reference() -> None:
    copy = pickle.loads(pickle.dumps(module_tasks.double))
    assert copy is module_tasks.double


def test_a_kit_pickles_with_its_function_tasks() -> None:
    kit = Kit(MemoryBackend())
    kit.task(group="g", name="add")(module_tasks.add)
    rebuild, (backend, *parts, tasks) = kit.__reduce__()
    # The in-memory backend does not pickle (it is single-process): pickle the rest.
    copy = rebuild(backend, *pickle.loads(pickle.dumps((*parts, tasks))))
    task = copy.tasks.find("g", "add")
    assert task is not None and task.kit is copy and task.fn is module_tasks.add


def test_a_local_function_task_refuses_to_pickle_with_a_reason(kit: Kit) -> None:
    @kit.task
    def local() -> None: ...

    with pytest.raises(TypeError, match="define its function at module level"):
        pickle.dumps(local)


def test_async_producers_store_and_wait(kit: Kit) -> None:
    import asyncio

    @kit.task(group="math", name="add")
    def add(a: int, b: int) -> int:
        return a + b

    async def produce() -> Any:
        result = await add.adelay(1, 2)
        direct = await kit.ainitiate_task("math", "add", {"args": [3, 4]})
        return result, direct

    result, direct = asyncio.run(produce())
    for r, expected in ((result, [1, 2]), (direct, [3, 4])):
        task = kit.backend.get_outcome(r.id).task  # type: ignore[union-attr]
        assert add.decode_call(task) == (expected, {})


@pytest.mark.slow
def test_a_type_checker_sees_the_functions_parameters_and_result(tmp_path: Path) -> None:
    """mypy reports a wrong argument type to ``delay`` and infers ``Result[dict]``."""
    source = tmp_path / "typed_tasks.py"
    source.write_text(
        textwrap.dedent(
            """
            import taskkit

            kit = taskkit.make_kit("memory://")

            @kit.task(group="mail", retries=5, timeout=30)
            def send(to: str, subject: str = "") -> dict[str, str]:
                return {"to": to}

            @kit.task
            async def fetch(url: str) -> int:
                return 1

            reveal_type(send.delay("ada@example.com", subject="hi"))
            reveal_type(send.delay("ada").get())
            reveal_type(fetch.delay("u"))
            send.delay(42)
            send.delay("ada", subjekt="typo")
            """
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    # Older mypy spells builtins out ("builtins.dict[builtins.str, ...]"); newer does not.
    out = run.stdout.replace("builtins.", "")
    assert 'Revealed type is "taskkit._result.Result[dict[str, str]]"' in out, out
    assert 'Revealed type is "dict[str, str]"' in out, out
    assert 'Revealed type is "taskkit._result.Result[int]"' in out, out
    assert 'Argument 1 to "delay" of "_BaseTaskFunction" has incompatible type "int"' in out, out
    assert 'Unexpected keyword argument "subjekt"' in out, out
    assert "Found 2 errors" in out, out


def test_a_tasks_own_max_deliveries_makes_it_a_dead_letter_sooner() -> None:
    backend = MemoryBackend()
    kit = Kit(backend, lease_seconds=2.0, control_interval=0.05, max_deliveries=5)
    ran: list[int] = []

    @kit.task(group="fragile", name="once", max_deliveries=1)
    def once() -> None:
        ran.append(1)

    @kit.task(group="fragile", name="sturdy")
    def sturdy() -> str:
        return "ran"

    fragile = once.delay()
    other = sturdy.delay()
    # Two workers that were lost with the tasks: each delivery counted, leases expired.
    for lost in ("lost-1", "lost-2"):
        batch = backend.claim("fragile", lost, 10, 30.0, 5)
        assert len(batch.claims) == 2
        assert backend.release_worker(lost) == 2
    [handle] = kit.start_processes(1, {"fragile": 1})
    try:
        assert other.get(timeout=30) == "ran"  # 3 deliveries: within the kit's 5
        with pytest.raises(taskkit.DeadLettered, match="worker lost"):
            fragile.get(timeout=30)  # its third delivery passes its own limit of 1
    finally:
        handle.kill()
        handle.join(10)
    assert ran == []
    assert [o.task.id for o in kit.dead_letters("fragile")] == [fragile.id]
    assert kit.requeue_dead_letter(fragile.id)


def test_a_handler_may_decide_per_group_whether_it_is_async() -> None:
    class Mixed(TaskHandler):
        def is_async_group(self, group: str) -> bool:
            return group == "io"

    kit = Kit(MemoryBackend(), Mixed())
    assert kit.router.is_async_group("io")  # type: ignore[attr-defined]
    assert not kit.router.is_async_group("cpu")  # type: ignore[attr-defined]


def test_a_sync_function_in_an_async_group_runs_off_the_event_loop() -> None:
    import threading

    kit = Kit(MemoryBackend(), lease_seconds=2.0, control_interval=0.05)

    @kit.task(group="mixed", name="io")
    async def io() -> str:
        return threading.current_thread().name

    @kit.task(group="mixed", name="cpu")
    def cpu() -> str:
        return threading.current_thread().name

    [handle] = kit.start_processes(1, {"mixed": 4})
    try:
        loop_thread = io.delay().get(timeout=30)
        worker_thread = cpu.delay().get(timeout=30)
    finally:
        handle.kill()
        handle.join(10)
    assert loop_thread != worker_thread, "a sync function must not hold the event loop"


def test_an_eager_async_task_inside_a_running_loop_is_refused_before_it_runs(kit: Kit) -> None:
    import asyncio

    ran: list[int] = []

    @kit.task
    async def fetch() -> None:
        ran.append(1)

    async def inside() -> None:
        with pytest.raises(ConfigurationError, match="inside a running event loop"):
            fetch.initiate(eager=True)

    asyncio.run(inside())
    assert ran == []
