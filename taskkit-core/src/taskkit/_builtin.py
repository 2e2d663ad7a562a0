"""taskkit's own parts, registered through the same hooks as any plugin."""

from __future__ import annotations

import importlib.util
from typing import Any

from .plugins import (
    BackendRegistry,
    RetryPolicyRegistry,
    ScheduleRegistry,
    SerializerRegistry,
    hookimpl,
)


def _memory_backend(url: str, **options: Any) -> Any:
    from .memory import MemoryBackend  # noqa: PLC0415

    return MemoryBackend(**options)


@hookimpl
def taskkit_register_backends(registry: BackendRegistry) -> None:
    registry.add("memory", _memory_backend, schemes=("memory",), distribution="taskkit-core")


@hookimpl
def taskkit_register_serializers(registry: SerializerRegistry) -> None:
    from .serializers import JSONSerializer, MsgpackSerializer, PickleSerializer  # noqa: PLC0415

    registry.add(JSONSerializer.name, JSONSerializer)
    if importlib.util.find_spec("msgpack") is not None:
        registry.add(MsgpackSerializer.name, MsgpackSerializer)
    # Registered so it can be named, but it refuses to work without an HMAC key.
    registry.add(PickleSerializer.name, PickleSerializer)


@hookimpl
def taskkit_register_retry_policies(registry: RetryPolicyRegistry) -> None:
    from .retry import ExponentialBackoff, NoRetry  # noqa: PLC0415

    registry.add(ExponentialBackoff.name, ExponentialBackoff)
    registry.add(NoRetry.name, NoRetry)


@hookimpl
def taskkit_register_schedules(registry: ScheduleRegistry) -> None:
    from .schedule import CronSchedule  # noqa: PLC0415

    registry.add("cron", CronSchedule.from_expression)


@hookimpl(trylast=True)
def taskkit_execute_task(task: Any, call: Any) -> Any:
    return call()
