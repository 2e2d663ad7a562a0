"""Start-up checks of the Redis server: settings under which Redis may lose tasks."""

from __future__ import annotations

from typing import Any

import redis.exceptions

__all__ = ["server_warnings"]

MIN_VERSION = (7, 0)


def _nodes(client: Any, cluster: bool) -> list[tuple[str, Any]]:
    if not cluster:
        return [("", client)]
    return [
        (f" (node {node.host}:{node.port})", client.get_redis_connection(node))
        for node in client.get_primaries()
    ]


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        try:
            parts.append(int(piece))
        except ValueError:
            parts.append(0)
    return tuple(parts)


def server_warnings(client: Any, cluster: bool, where: str) -> list[str]:
    """Warnings about the server at ``where``; an empty list when all is well.

    ``CONFIG GET`` may be refused to an ACL user that taskkit runs as (it should be): then
    the warning says what could not be checked, so an operator checks it by hand.
    """
    warnings: list[str] = []
    for label, node in _nodes(client, cluster):
        try:
            version = str(node.info("server").get("redis_version", "0"))
        except redis.exceptions.ResponseError as exc:
            warnings.append(f"could not read the Redis version of {where}{label}: {exc}")
        else:
            if _version(version) < MIN_VERSION:
                warnings.append(
                    f"Redis {version} at {where}{label} is older than 7.0, which taskkit-redis "
                    "needs (TIME in scripts with effect replication, SET NX GET)"
                )
        try:
            config = node.config_get("maxmemory-policy")
            config.update(node.config_get("appendonly"))
            config.update(node.config_get("save"))
        except redis.exceptions.ResponseError as exc:
            warnings.append(
                f"could not check the eviction policy of {where}{label} (CONFIG GET refused: "
                f"{exc}); make sure maxmemory-policy is noeviction, or Redis may silently "
                "delete tasks under memory pressure"
            )
            continue
        policy = _decode(config.get("maxmemory-policy"))
        if policy != "noeviction":
            warnings.append(
                f"Redis at {where}{label} has maxmemory-policy {policy!r}: under memory "
                "pressure it silently deletes keys, and with them queued tasks and results. "
                "Set maxmemory-policy noeviction"
            )
        if _decode(config.get("appendonly")) != "yes" and not _decode(config.get("save")):
            warnings.append(
                f"Redis at {where}{label} has no persistence (appendonly no, no RDB saves): a "
                "restart loses every queued task. See docs/redis.md"
            )
    return warnings


def _decode(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
