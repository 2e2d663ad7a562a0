"""Configuration: URLs, options and clients, normalised to a picklable :class:`RedisConfig`.

A backend pickles as its configuration (never as a live connection), so worker processes
build their own clients. Whatever the source (URL, options, an existing ``redis.Redis``),
TLS certificate and host name checks stay on, sockets time out (5 s by default), and the
password never appears in a ``repr`` or a log line.
"""

from __future__ import annotations

import inspect
import ssl
from dataclasses import dataclass, field, replace
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.retry import Retry
from taskkit.errors import ConfigurationError
from taskkit.plugins import redact_url

from ._keys import validate_prefix

__all__ = ["BACKEND_OPTIONS", "RedisConfig", "config_from_client", "config_from_url"]

DEFAULT_PREFIX = "taskkit"
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_DEAD_LETTER_LIMIT = 10_000
DEFAULT_DEAD_LETTER_MAX_AGE = 7 * 24 * 3600.0

#: Connection settings copied from URLs, options and clients (``redis.Redis`` arguments).
CONNECTION_OPTIONS = frozenset(
    {
        "host",
        "port",
        "db",
        "username",
        "password",
        "unix_socket_path",
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "client_name",
        "health_check_interval",
        "ssl",
        "ssl_keyfile",
        "ssl_certfile",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_ca_data",
        "ssl_password",
        "ssl_ciphers",
        "ssl_min_version",
    }
)
#: Accepted only with their safe values: certificate and host name checks stay on.
_TLS_GUARDS = ("ssl_cert_reqs", "ssl_check_hostname")
#: The backend's own options.
BACKEND_OPTIONS = frozenset(
    {"prefix", "cluster", "retries", "dead_letter_limit", "dead_letter_max_age"}
)


@dataclass(frozen=True)
class RedisConfig:
    """Everything needed to rebuild a backend in another process.

    :ivar connection: ``redis.Redis`` keyword arguments (host, port, TLS files, timeouts...).
    :ivar cluster: talk to a Redis Cluster through ``redis.cluster.RedisCluster``.
    :ivar startup_nodes: ``(host, port)`` pairs of cluster nodes (cluster mode).
    :ivar prefix: the key prefix; several applications share a Redis with distinct prefixes.
    :ivar retries: reconnect attempts of one command before it fails (redis-py ``Retry``).
    :ivar dead_letter_limit: dead letters kept per group.
    :ivar dead_letter_max_age: seconds a dead letter is kept at most.
    """

    connection: dict[str, Any] = field(default_factory=dict)
    cluster: bool = False
    startup_nodes: tuple[tuple[str, int], ...] = ()
    prefix: str = DEFAULT_PREFIX
    retries: int = 2
    dead_letter_limit: int = DEFAULT_DEAD_LETTER_LIMIT
    dead_letter_max_age: float = DEFAULT_DEAD_LETTER_MAX_AGE

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError("retries must be an int >= 0")
        if not isinstance(self.dead_letter_limit, int) or self.dead_letter_limit < 1:
            raise ConfigurationError("dead_letter_limit must be an int >= 1")
        if not self.dead_letter_max_age > 0:
            raise ConfigurationError("dead_letter_max_age must be > 0")
        timeout = self.connection.get("socket_timeout")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError("socket_timeout must be a positive number of seconds")

    def __repr__(self) -> str:
        return f"RedisConfig({self.describe()!r}, prefix={self.prefix!r})"

    @property
    def socket_timeout(self) -> float:
        return float(self.connection["socket_timeout"])

    def describe(self) -> str:
        """Where this configuration points, without the password: safe to log."""
        c = self.connection
        scheme = "rediss" if c.get("ssl") else "redis"
        user = c.get("username") or ""
        auth = f"{user}:***@" if c.get("password") else (f"{user}@" if user else "")
        if c.get("unix_socket_path"):
            where = f"unix://{auth}{c['unix_socket_path']}?db={c.get('db', 0)}"
        elif self.cluster:
            nodes = ",".join(f"{h}:{p}" for h, p in self.startup_nodes)
            where = f"{scheme}://{auth}{nodes} (cluster)"
        else:
            host, port = c.get("host", "localhost"), c.get("port", 6379)
            where = f"{scheme}://{auth}{host}:{port}/{c.get('db', 0)}"
        return redact_url(where)

    def build_client(self) -> Any:
        """A new client (``redis.Redis`` or ``RedisCluster``) that returns bytes."""
        kwargs = self._client_kwargs(Retry)
        if self.cluster:
            from redis.cluster import ClusterNode, RedisCluster  # noqa: PLC0415

            nodes = [
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in self.startup_nodes
            ]
            return RedisCluster(startup_nodes=nodes, **kwargs)
        return redis.Redis(**kwargs)

    def build_async_client(self) -> Any:
        """A new asyncio client (``redis.asyncio.Redis`` or its ``RedisCluster``), the same
        settings as :meth:`build_client`; it belongs to the event loop that first uses it."""
        # Imported here: programs that never await pay nothing for redis.asyncio.
        import redis.asyncio  # noqa: PLC0415
        from redis.asyncio.retry import Retry as AsyncRetry  # noqa: PLC0415

        kwargs = self._client_kwargs(AsyncRetry)
        if self.cluster:
            from redis.asyncio.cluster import ClusterNode, RedisCluster  # noqa: PLC0415

            _check_accepted(RedisCluster, kwargs)
            nodes = [ClusterNode(host, port) for host, port in self.startup_nodes]
            return RedisCluster(startup_nodes=nodes, **kwargs)
        return redis.asyncio.Redis(**kwargs)

    def build_async_node_client(self, host: str, port: int) -> Any:
        """An asyncio ``redis.asyncio.Redis`` for one node of the cluster (sharded pub/sub)."""
        import redis.asyncio  # noqa: PLC0415
        from redis.asyncio.retry import Retry as AsyncRetry  # noqa: PLC0415

        return redis.asyncio.Redis(host=host, port=port, **self._client_kwargs(AsyncRetry))

    def _client_kwargs(self, retry_class: Any) -> dict[str, Any]:
        kwargs = dict(self.connection)
        kwargs["decode_responses"] = False
        # Few, quick reconnect attempts: they ride over a restart or a stale pooled
        # connection; a longer outage surfaces as BackendUnavailable to the caller, whose
        # loop backs off, instead of hanging inside one command.
        kwargs["retry"] = retry_class(ExponentialBackoff(cap=0.5, base=0.05), self.retries)
        if kwargs.get("ssl"):
            kwargs["ssl_cert_reqs"] = "required"
            kwargs["ssl_check_hostname"] = True
        if self.cluster:
            for name in ("host", "port", "db", "unix_socket_path"):
                kwargs.pop(name, None)
        elif not kwargs.get("ssl"):
            kwargs.pop("ssl", None)
        return kwargs


def _check_accepted(cls: type, kwargs: dict[str, Any]) -> None:
    """Refuse settings a client class does not take (redis-py's asyncio cluster client takes
    fewer TLS settings than the others), rather than drop them silently."""
    accepted = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigurationError(
            f"{cls.__module__}.{cls.__qualname__} of this redis-py does not take "
            f"{', '.join(unknown)}: the asyncio primitives cannot use these settings"
        )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _secure_tls(kwargs: dict[str, Any], *, from_client: bool) -> None:
    """Refuse settings that turn TLS verification off; drop the guards (re-set on build)."""
    reqs = kwargs.pop("ssl_cert_reqs", None)
    if reqs is not None and reqs not in ("required", ssl.CERT_REQUIRED):
        raise ConfigurationError(
            f"ssl_cert_reqs={reqs!r} turns certificate verification off; taskkit-redis keeps it "
            "on. Give the server's CA with ssl_ca_certs (or ssl_ca_data) instead"
        )
    check_hostname = kwargs.pop("ssl_check_hostname", None)
    # redis-py < 6 defaulted to no host name check, so a client's False may be a default:
    # it is overridden (checks on). Asked for explicitly in a URL or an option, it is refused.
    if check_hostname is not None and not _truthy(check_hostname) and not from_client:
        raise ConfigurationError(
            "ssl_check_hostname=False turns host name verification off; taskkit-redis keeps it on"
        )


def _split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    backend = {k: v for k, v in options.items() if k in BACKEND_OPTIONS}
    connection = {k: v for k, v in options.items() if k not in BACKEND_OPTIONS}
    unknown = set(connection) - CONNECTION_OPTIONS - set(_TLS_GUARDS)
    if unknown:
        raise ConfigurationError(f"unknown Redis backend option(s): {', '.join(sorted(unknown))}")
    return backend, connection


def _finish(
    connection: dict[str, Any], backend: dict[str, Any], nodes: tuple[tuple[str, int], ...] = ()
) -> RedisConfig:
    for name in ("socket_timeout", "socket_connect_timeout"):
        if connection.get(name) is None:
            connection[name] = DEFAULT_SOCKET_TIMEOUT
    cluster = _truthy(backend.pop("cluster", False))
    if cluster and not nodes:
        nodes = ((str(connection.get("host", "localhost")), int(connection.get("port", 6379))),)
    if cluster and connection.get("unix_socket_path"):
        raise ConfigurationError("Redis Cluster does not run over unix sockets")
    for name in ("retries", "dead_letter_limit"):
        if isinstance(backend.get(name), str):
            backend[name] = int(backend[name])
    if isinstance(backend.get("dead_letter_max_age"), str):
        backend["dead_letter_max_age"] = float(backend["dead_letter_max_age"])
    return RedisConfig(connection=connection, cluster=cluster, startup_nodes=nodes, **backend)


def config_from_url(url: str, **options: Any) -> RedisConfig:
    """Parse ``redis://``, ``rediss://`` or ``unix://`` URLs; ``options`` override the URL.

    Query parameters ``prefix`` and ``cluster`` set the backend options of the same names.
    """
    try:
        parsed = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
    connection_class = parsed.pop("connection_class", None)
    if connection_class is not None and issubclass(connection_class, UnixDomainSocketConnection):
        parsed["unix_socket_path"] = parsed.pop("path")
    elif connection_class is not None and issubclass(connection_class, SSLConnection):
        parsed["ssl"] = True
    for name in BACKEND_OPTIONS:
        if name in parsed and name not in options:
            options[name] = parsed.pop(name)
        parsed.pop(name, None)
    backend, extra = _split_options(options)
    connection = {k: v for k, v in parsed.items() if v is not None}
    unknown = set(connection) - CONNECTION_OPTIONS - set(_TLS_GUARDS)
    if unknown:
        raise ConfigurationError(
            f"unknown parameter(s) in Redis URL {redact_url(url)!r}: {', '.join(sorted(unknown))}"
        )
    connection.update(extra)
    _secure_tls(connection, from_client=False)
    return _finish(connection, backend)


def config_from_client(client: Any, **options: Any) -> RedisConfig:
    """Copy the connection settings of a ``redis.Redis`` (or ``RedisCluster``) client.

    Only plain settings are copied (host, port, db, credentials, TLS files, timeouts), so the
    result pickles; the client itself is left alone.
    """
    backend, extra = _split_options(options)
    _secure_tls(extra, from_client=False)
    nodes: tuple[tuple[str, int], ...] = ()
    from redis.cluster import RedisCluster  # noqa: PLC0415

    if isinstance(client, RedisCluster):
        manager = client.nodes_manager
        raw = dict(manager.connection_kwargs)
        nodes = tuple(sorted((n.host, int(n.port)) for n in manager.startup_nodes.values()))
        connection_class = raw.pop("connection_class", None)
        if connection_class is not None and issubclass(connection_class, SSLConnection):
            raw["ssl"] = True
        backend.setdefault("cluster", True)
    elif isinstance(client, redis.Redis):
        pool = client.connection_pool
        raw = dict(pool.connection_kwargs)
        connection_class = pool.connection_class
        if issubclass(connection_class, UnixDomainSocketConnection):
            raw["unix_socket_path"] = raw.pop("path", None)
        elif issubclass(connection_class, SSLConnection):
            raw["ssl"] = True
    else:
        raise ConfigurationError(
            f"make_kit takes a redis.Redis or RedisCluster client, not {type(client).__name__}"
        )
    _secure_tls(raw, from_client=True)
    connection = {k: v for k, v in raw.items() if k in CONNECTION_OPTIONS and v is not None}
    connection.update(extra)
    return _finish(connection, backend, nodes)


def with_options(config: RedisConfig, **changes: Any) -> RedisConfig:
    """A copy of ``config`` with backend options changed."""
    return replace(config, **changes)
