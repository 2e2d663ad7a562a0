"""The plugin system: registries, entry points, the hook reference, serializers, policies."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import taskkit
from taskkit import ConfigurationError, ExponentialBackoff, NoRetry, Task, hookimpl, hookspecs
from taskkit.plugins import make_plugin_manager, redact_url, registries
from taskkit.serializers import JSONSerializer, PickleSerializer

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"


def _hookspecs() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("taskkit_")
    }


def test_every_hook_and_its_signature_is_in_the_hook_reference() -> None:
    text = DOCS.read_text()
    documented = set(re.findall(r"^### `(taskkit_\w+)`", text, re.M))
    specs = _hookspecs()
    assert documented == set(specs), "docs/hooks.md and taskkit/hookspecs.py disagree"
    for name, signature in specs.items():
        rendered = f"{name}{signature}".replace("'", "")
        assert rendered in text, f"docs/hooks.md shows a stale signature of {name}"


def test_every_hookspec_documents_its_parameters_and_version() -> None:
    for name, signature in _hookspecs().items():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert ".. versionadded::" in doc, name
        for param in signature.parameters:
            assert f":param {param}:" in doc, f"{name} does not document {param}"


def test_builtins_register_through_the_hooks() -> None:
    regs = registries()
    assert "memory" in regs.backends.names()
    assert {"json", "pickle"} <= set(regs.serializers.names())
    assert {"exponential", "none"} <= set(regs.retry_policies.names())
    assert "cron" in regs.schedules.names()


def test_msgpack_is_registered_when_installed() -> None:
    pytest.importorskip("msgpack", reason="msgpack is an optional extra")
    serializer = registries().serializers.get("msgpack")()
    assert serializer.loads(serializer.dumps({"a": [1, b"x"]})) == {"a": [1, b"x"]}


def test_an_unknown_hook_fails_fast() -> None:
    class Typo:
        @hookimpl
        def taskkit_task_sucseeded(self, task: Task) -> None: ...

    with pytest.raises(ConfigurationError, match="unknown hook"):
        make_plugin_manager(load_entry_points=False, plugins=(Typo(),))


def test_unknown_url_scheme_and_missing_distribution() -> None:
    handler = taskkit.TaskHandler()
    with pytest.raises(ConfigurationError, match="no backend serves URL scheme 'nope'"):
        taskkit.make_kit("nope://x", handler)
    with pytest.raises(ConfigurationError, match="not a backend URL"):
        taskkit.make_kit("localhost:6379", handler)
    with pytest.raises(ConfigurationError, match="unknown kit option"):
        taskkit.make_kit(taskkit.MemoryBackend(), handler, colour="blue")
    kit = taskkit.make_kit("memory://", handler, lease_seconds=5)
    assert kit.config.lease_seconds == 5 and isinstance(kit.backend, taskkit.MemoryBackend)


def test_missing_backend_distribution_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskkit.plugins import BackendRegistry

    with pytest.raises(ConfigurationError, match="pip install taskkit-redis"):
        BackendRegistry().for_url("redis://localhost")


def test_passwords_are_redacted() -> None:
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert "s3cret" not in redact_url("rediss://:s3cret@host")


def test_json_is_the_default_and_pickle_needs_a_key() -> None:
    handler = taskkit.TaskHandler()
    task = Task("id", "g", "n", handler.encode_data("g", "n", {"x": [1, "é"]}), 0.0, 0.0)
    assert task.data == '{"x":[1,"é"]}'.encode()
    assert handler.decode_data(task) == {"x": [1, "é"]}
    assert JSONSerializer().loads(JSONSerializer().dumps([1, None])) == [1, None]
    with pytest.raises(ConfigurationError, match="HMAC key"):
        PickleSerializer(b"")
    signed = PickleSerializer(b"k").dumps({1, 2})
    assert PickleSerializer(b"k").loads(signed) == {1, 2}
    with pytest.raises(ValueError, match="signature mismatch"):
        PickleSerializer(b"other").loads(signed)


def test_named_serializer_on_a_handler() -> None:
    pytest.importorskip("msgpack", reason="msgpack is an optional extra")

    class Packed(taskkit.TaskHandler):
        serializer = "msgpack"

    encoded = Packed().encode_data("g", "n", {"a": 1})
    assert encoded != b'{"a":1}' and Packed().decode_result(None, encoded) == {"a": 1}  # type: ignore[arg-type]


def test_exponential_backoff_is_capped_jittered_and_bounded() -> None:
    policy = ExponentialBackoff(base=1, factor=2, cap=10, max_retries=5, jitter=0.5)
    task = Task("id", "g", "n", b"", 0.0, 0.0)
    delays = [policy.next_interval(task.evolve(retry_count=n), ValueError()) for n in range(7)]
    for n, delay in enumerate(delays[:5]):
        full = min(10, 2**n)
        assert delay is not None and full * 0.5 <= delay <= full
    assert delays[5] is None and delays[6] is None
    assert NoRetry().next_interval(task, ValueError()) is None
    with pytest.raises(ValueError):
        ExponentialBackoff(factor=0.5)


def test_retry_policy_by_name() -> None:
    class Once(taskkit.TaskHandler):
        retry_policy = "none"

    task = Task("id", "g", "n", b"", 0.0, 0.0)
    assert Once().get_retry_interval(task, ValueError()) is None
    assert taskkit.TaskHandler().get_retry_interval(task, ValueError()) is not None
