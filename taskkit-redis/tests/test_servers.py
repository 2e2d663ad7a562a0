"""Private servers: the documented ACL user, unix sockets, TLS checks, start-up warnings,
idle waits that cost nothing, and the detection of a wiped data set."""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from _servers import RedisServer, free_port
from helpers import make_tasks
from taskkit import BackendUnavailable, CancelResult, TaskState
from taskkit_redis import RedisBackend

DOCS = Path(__file__).resolve().parents[2] / "docs" / "redis.md"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    instance = RedisServer(tmp_path / "data").start()
    yield instance
    instance.stop()


def documented_acl(prefix: str, password: str) -> list[str]:
    """The ACL SETUSER line of docs/redis.md, for ``prefix``, split into arguments."""
    block = re.search(r"^\s*(ACL SETUSER taskkit .+)$", DOCS.read_text(), re.MULTILINE)
    assert block, "docs/redis.md lost its ACL SETUSER line"
    line = (
        block.group(1)
        .replace("{taskkit", "{" + prefix)
        .replace("~taskkit:i:", f"~{prefix}:i:")
        .replace(">CHANGE-ME", f">{password}")
    )
    return shlex.split(line)


def exercise(backend: RedisBackend, group: str) -> None:
    """Every primitive once."""
    made = make_tasks(backend, group, 3)
    assert backend.put(made) == [True, True, True]
    assert backend.put_scheduled(make_tasks(backend, group, 1)[0], "s", "k", 1.0)
    assert backend.get_schedule_mark("s", "k") == 1.0
    batch = backend.claim(group, "w1", 10, 30.0, 3)
    assert len(batch.claims) == 4
    first, second, third, fourth = batch.claims
    backend.renew(batch.claims, 30.0)
    backend.complete(first, b"r")
    backend.retry(second, backend.now() + 3600, "again")
    backend.fail(third, "boom")
    backend.release([fourth])
    assert backend.release_worker("w1") == 0
    assert backend.wait_for_outcome(first.task.id, 1.0).state is TaskState.SUCCEEDED  # type: ignore[union-attr]
    backend.wait_for_work(group, 0.05)
    assert backend.cancel(fourth.task.id) is CancelResult.CANCELLED
    backend.publish_control("pause", [group])
    assert backend.read_control(0)
    assert backend.list_dead_letters() == []
    assert backend.requeue_dead_letter(first.task.id) is False
    assert backend.stats(group).queued == 1


def test_the_documented_acl_user_is_enough(server: RedisServer) -> None:
    admin = redis.Redis(port=server.port)
    admin.execute_command(*documented_acl("aclapp", "s3cret"))
    backend = RedisBackend(f"redis://taskkit:s3cret@127.0.0.1:{server.port}/0", prefix="aclapp")
    try:
        exercise(backend, "g")
        warnings = backend.check()
        assert any("could not check the eviction policy" in w for w in warnings), warnings
        # ...and nothing beyond its prefix.
        with pytest.raises(redis.exceptions.NoPermissionError):
            backend.client.get("otherapp:secret")
    finally:
        backend.close()
        admin.close()


def test_unix_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisServer(tmp_path / "data", None, "--unixsocket", str(socket_path)).start()
    backend = RedisBackend(f"unix://{socket_path}?db=1", prefix="unixapp")
    try:
        exercise(backend, "g")
        assert backend.client.connection_pool.connection_kwargs["path"] == str(socket_path)
    finally:
        backend.close()
        server.stop()


def test_check_warns_about_eviction_and_missing_persistence(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "data", None, "--maxmemory-policy", "allkeys-lru").start()
    backend = RedisBackend(server.url)
    try:
        warnings = backend.check()
        assert any("maxmemory-policy 'allkeys-lru'" in w for w in warnings), warnings
        assert any("no persistence" in w for w in warnings), warnings
        backend.client.config_set("maxmemory-policy", "noeviction")
        backend.client.config_set("save", "900 1")
        assert backend.check() == []
    finally:
        backend.close()
        server.stop()


def _commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if not k.endswith("info"))


def test_idle_waits_send_almost_no_commands(server: RedisServer) -> None:
    """No polling: an idle claimer and a waiting Result.get cost a handful of commands."""
    backend = RedisBackend(server.url, prefix="idle")
    observer = redis.Redis(port=server.port)
    try:
        task = make_tasks(backend, "g", 1)[0]
        backend.put([task])
        backend.claim("g", "w", 1, 30.0, 3)
        backend.wait_for_work("g", 0.01)  # subscribes once
        before = _commands(observer)
        backend.wait_for_work("g", 1.5)
        backend.wait_for_outcome(task.id, 1.5)
        spent = _commands(observer) - before
        assert spent <= 6, f"{spent} commands in 3 s of idle waiting: polling?"
    finally:
        observer.close()
        backend.close()


def test_a_wiped_data_set_is_reported(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    backend = RedisBackend(server.url, prefix="wipe")
    try:
        backend.publish_control("pause", None)
        seen = backend.read_control(0)
        backend.client.flushall()  # what a restart without persistence looks like
        with caplog.at_level(logging.CRITICAL, logger="taskkit.redis"):
            assert backend.read_control(seen[-1].seq) == []
        assert any("lost taskkit's data" in r.getMessage() for r in caplog.records)
        # Sequence numbers never go back, so a worker's cursor still sees new events.
        event = backend.publish_control("resume", None)
        assert event.seq > seen[-1].seq
        assert backend.read_control(seen[-1].seq) == [event]
    finally:
        backend.close()


# ---------------------------------------------------------------------- TLS


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        # Python 3.13 verifies strictly (VERIFY_X509_STRICT): a CA needs key usage.
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=d,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=d,
    )
    (d / "san.ext").write_text(
        "subjectAltName=DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        "subjectKeyIdentifier=hash\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
        cwd=d,
    )
    port = free_port()
    server = RedisServer(
        d / "data",
        free_port(),
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(d / "server.crt"),
        "--tls-key-file",
        str(d / "server.key"),
        "--tls-ca-cert-file",
        str(d / "ca.crt"),
        "--tls-auth-clients",
        "no",
    )
    server.start()
    server.tls_port = port  # type: ignore[attr-defined]
    yield server, d
    server.stop()


def test_tls_with_the_servers_ca_works(tls_server: tuple[RedisServer, Path]) -> None:
    server, d = tls_server
    url = f"rediss://localhost:{server.tls_port}/0"  # type: ignore[attr-defined]
    backend = RedisBackend(url, prefix="tls", ssl_ca_certs=str(d / "ca.crt"))
    try:
        exercise(backend, "g")
    finally:
        backend.close()


def test_tls_refuses_an_unknown_ca_and_a_wrong_host_name(
    tls_server: tuple[RedisServer, Path],
) -> None:
    server, d = tls_server
    port = server.tls_port  # type: ignore[attr-defined]
    unknown_ca = RedisBackend(f"rediss://localhost:{port}/0", prefix="tls", retries=0)
    wrong_name = RedisBackend(  # the certificate names localhost, not 127.0.0.1
        f"rediss://127.0.0.1:{port}/0", prefix="tls", ssl_ca_certs=str(d / "ca.crt"), retries=0
    )
    try:
        for backend in (unknown_ca, wrong_name):
            with pytest.raises(BackendUnavailable, match=r"(?i)certificate"):
                backend.now()
    finally:
        unknown_ca.close()
        wrong_name.close()
