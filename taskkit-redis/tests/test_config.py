"""Configuration: URLs, clients, TLS guards, secrets kept out of reprs, pickling."""

from __future__ import annotations

import pickle

import pytest
import redis
from taskkit import ConfigurationError
from taskkit_redis import RedisBackend
from taskkit_redis._config import config_from_client, config_from_url


def test_url_with_credentials_database_and_backend_options() -> None:
    config = config_from_url(
        "redis://alice:s%40cret@db.example:6380/3?prefix=shop&socket_timeout=2"
    )
    assert config.connection["host"] == "db.example"
    assert config.connection["port"] == 6380
    assert config.connection["db"] == 3
    assert config.connection["username"] == "alice"
    assert config.connection["password"] == "s@cret"
    assert config.connection["socket_timeout"] == 2.0
    assert config.prefix == "shop"
    assert not config.cluster


def test_timeouts_default_to_five_seconds() -> None:
    config = config_from_url("redis://localhost")
    assert config.connection["socket_timeout"] == 5.0
    assert config.connection["socket_connect_timeout"] == 5.0
    # A client built with no timeout (redis-py < 6 default) still gets one.
    client = redis.Redis(host="localhost", socket_timeout=None, socket_connect_timeout=None)
    assert config_from_client(client).connection["socket_timeout"] == 5.0


def test_unix_socket_url() -> None:
    config = config_from_url("unix:///run/redis/redis.sock?db=2")
    assert config.connection["unix_socket_path"] == "/run/redis/redis.sock"
    assert config.connection["db"] == 2
    assert "host" not in config.connection


def test_rediss_keeps_certificate_and_hostname_checks_on() -> None:
    config = config_from_url("rediss://cache.example:6380/0", ssl_ca_certs="/etc/ca.pem")
    assert config.connection["ssl"] is True
    client = config.build_client()
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True
    assert kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    client.close()


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("rediss://h/0?ssl_cert_reqs=none", {}),
        ("rediss://h/0?ssl_cert_reqs=optional", {}),
        ("rediss://h/0", {"ssl_cert_reqs": "none"}),
        ("rediss://h/0", {"ssl_check_hostname": False}),
    ],
)
def test_no_setting_turns_tls_verification_off(url: str, options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="verification off"):
        config_from_url(url, **options)


def test_a_client_without_certificate_checks_is_refused() -> None:
    client = redis.Redis(host="h", ssl=True, ssl_cert_reqs="none")
    with pytest.raises(ConfigurationError, match="certificate verification off"):
        RedisBackend.from_client(client)


def test_client_settings_are_copied() -> None:
    client = redis.Redis(
        host="10.0.0.5", port=6390, db=4, username="app", password="pw", socket_timeout=1.5
    )
    config = config_from_client(client, prefix="app1")
    assert config.connection["host"] == "10.0.0.5"
    assert config.connection["port"] == 6390
    assert config.connection["db"] == 4
    assert config.connection["username"] == "app"
    assert config.connection["password"] == "pw"
    assert config.connection["socket_timeout"] == 1.5
    assert config.prefix == "app1"


def test_cluster_url() -> None:
    config = config_from_url("redis://10.0.0.7:7000/0?cluster=true")
    assert config.cluster
    assert config.startup_nodes == (("10.0.0.7", 7000),)
    with pytest.raises(ConfigurationError, match="unix sockets"):
        config_from_url("unix:///tmp/r.sock", cluster=True)


def test_password_never_in_repr_or_description() -> None:
    backend = RedisBackend("redis://bob:hunter2@127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert "hunter2" not in repr(backend)
    assert "hunter2" not in repr(backend.config)
    assert "hunter2" not in backend.config.describe()
    assert "bob:***@" in backend.config.describe()
    backend.close()


def test_the_backend_pickles_by_configuration() -> None:
    backend = RedisBackend("redis://127.0.0.1:6379/0", prefix="pickled")
    copy = pickle.loads(pickle.dumps(backend))
    assert copy.config == backend.config
    assert copy.client is not backend.client
    clone = backend.clone()
    assert clone.config == backend.config and clone.client is not backend.client
    for b in (backend, copy, clone):
        b.close()


@pytest.mark.parametrize("prefix", ["", "a b", "x{y}", "p*", "tab\t"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        config_from_url("redis://localhost", prefix=prefix)


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown Redis backend option"):
        config_from_url("redis://localhost", colour="blue")
    with pytest.raises(ConfigurationError, match="unknown parameter"):
        config_from_url("redis://localhost/0?colour=blue")
