"""Private Redis servers for tests that kill, restart or cluster Redis (never the shared one)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) exists and is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_until(predicate, timeout: float, message: str = "condition not met") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message}")
        time.sleep(0.02)


class RedisServer:
    """A redis-server child process on a free port, with its data in ``directory``."""

    def __init__(self, directory: Path, port: int | None = None, *args: str) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--logfile",
                str(self.directory / "redis.log"),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_until(lambda: client.ping(), 10, f"redis-server on {self.port} did not start")
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class RedisCluster3:
    """Three cluster-enabled masters on free ports, joined by ``redis-cli --cluster create``."""

    def __init__(self, directory: Path) -> None:
        self.servers = [
            RedisServer(
                directory / f"node{i}",
                free_cluster_port(),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
                "--appendonly",
                "no",
            )
            for i in range(3)
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.servers[0].port}/0?cluster=true"

    def start(self) -> RedisCluster3:
        for server in self.servers:
            server.start()
        subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{s.port}" for s in self.servers),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        clients = [redis.Redis(port=s.port, decode_responses=True) for s in self.servers]
        wait_until(
            lambda: all(c.cluster("info")["cluster_state"] == "ok" for c in clients),
            30,
            "the cluster did not become ok",
        )
        for c in clients:
            c.close()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
