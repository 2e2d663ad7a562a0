"""taskkit's own parts, registered through the same hooks as any plugin."""

from __future__ import annotations

import importlib.util
from typing import Any

from .errors import ConfigurationError
from .hookspecs import hookimpl
from .memory import MemoryBackend
from .registries import (
    BackendRegistry,
    RetryPolicyRegistry,
    ScheduleRegistry,
    SerializerRegistry,
)
from .retry import ExponentialBackoff, NoRetry
from .schedule import CronSchedule
from .serializers import JSONSerializer, MsgpackSerializer, PickleSerializer


def _memory_backend(url: str, **options: Any) -> MemoryBackend:
    return MemoryBackend(**options)


def _pickle_serializer(key: bytes | None = None) -> PickleSerializer:
    """``registries().serializers.get("pickle")(key=...)``: pickle needs its HMAC key."""
    if key is None:
        raise ConfigurationError(
            "the pickle serializer needs an HMAC key: build it as "
            "registries().serializers.get('pickle')(key=b'...') or PickleSerializer(key=...); "
            "a handler's serializer = 'pickle' cannot pass one, so encode and decode with that "
            "instance in the handler's encode_data/decode_data/encode_result/decode_result"
        )
    return PickleSerializer(key)


@hookimpl
def taskkit_register_backends(registry: BackendRegistry) -> None:
    registry.add("memory", _memory_backend, schemes=("memory",), distribution="taskkit-core")


@hookimpl
def taskkit_register_serializers(registry: SerializerRegistry) -> None:
    registry.add(JSONSerializer.name, JSONSerializer)
    if importlib.util.find_spec("msgpack") is not None:
        registry.add(MsgpackSerializer.name, MsgpackSerializer)
    # Registered so it can be named, but it refuses to work without an HMAC key.
    registry.add(PickleSerializer.name, _pickle_serializer)


@hookimpl
def taskkit_register_retry_policies(registry: RetryPolicyRegistry) -> None:
    registry.add(ExponentialBackoff.name, ExponentialBackoff)
    registry.add(NoRetry.name, NoRetry)


@hookimpl
def taskkit_register_schedules(registry: ScheduleRegistry) -> None:
    registry.add("cron", CronSchedule.from_expression)


@hookimpl(trylast=True)
def taskkit_execute_task(task: Any, call: Any) -> Any:
    return call()
