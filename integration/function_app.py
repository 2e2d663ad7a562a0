"""The issue-13 snippet as an app: a sync and an async function task on one kit.

The backend comes from ``TASKKIT_URL`` (and ``TASKKIT_OPTIONS``, JSON); ``TASKKIT_VERSION=old``
leaves out ``welcome``, as a worker deployed before that function existed would.
"""

from __future__ import annotations

import asyncio
import json
import os

import taskkit

kit = taskkit.make_kit(
    os.environ["TASKKIT_URL"],
    lease_seconds=3.0,
    heartbeat_interval=1.0,
    control_interval=0.2,
    grace_period=5.0,
    **json.loads(os.environ.get("TASKKIT_OPTIONS", "{}")),
)


@kit.task(group="mail", retries=5, timeout=30)
def send(to: str, subject: str = "") -> dict[str, object]:
    """The snippet's task: returns what it was asked and which process ran it."""
    return {"to": to, "subject": subject, "pid": os.getpid()}


@kit.task(group="crawl", timeout=30)
async def fetch(url: str) -> dict[str, object]:
    """The async equivalent: awaits (a stand-in for I/O) on the worker's event loop."""
    await asyncio.sleep(0.01)
    return {"url": url, "pid": os.getpid()}


if os.environ.get("TASKKIT_VERSION") != "old":

    @kit.task(group="mail")
    def welcome(name: str) -> str:
        """Deployed later than the workers of the rolling-deploy test."""
        return f"welcome, {name}"
