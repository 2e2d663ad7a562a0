"""An app with the Sentry plugin, for ``test_sentry_and_json_logs``.

``TASKKIT_URL`` / ``TASKKIT_OPTIONS`` (JSON) name the store. ``TASKKIT_SENTRY`` says who starts
Sentry: ``app`` (this module calls ``sentry_sdk.init``, as an app does: a forked worker
inherits the client, a spawn worker imports this module and so calls it too), ``plugin``
(``SentryPlugin(init=...)``: each worker process starts it itself), or nothing (the
producer in the test process). Events go, one JSON line each, to the file named by
``TASKKIT_SENTRY_EVENTS``, through sentry-sdk's transport hook: nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
from typing import Any

import sentry_sdk
import taskkit
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from taskkit import DiscardTask, ExponentialBackoff
from taskkit.contrib.sentry import SentryPlugin


class FileTransport(Transport):  # type: ignore[misc]
    """Appends each event to ``$TASKKIT_SENTRY_EVENTS`` as one line (every worker process
    appends to the same file; a short line in append mode is written whole)."""

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is None:
            return
        event.setdefault("contexts", {}).setdefault("process", {})["pid"] = os.getpid()
        with open(os.environ["TASKKIT_SENTRY_EVENTS"], "a", encoding="utf-8") as out:
            out.write(json.dumps(event, default=str) + "\n")


#: sentry_sdk.init's options: a transport class is only used with a DSN, which it never
#: contacts (FileTransport sends nothing).
SENTRY = {"dsn": "http://public@127.0.0.1:9/1", "transport": FileTransport}

_who = os.environ.get("TASKKIT_SENTRY", "")
if _who == "app":
    sentry_sdk.init(**SENTRY)
plugin = SentryPlugin(init=SENTRY) if _who == "plugin" else SentryPlugin()

kit = taskkit.make_kit(
    os.environ["TASKKIT_URL"],
    plugins=[plugin],
    lease_seconds=3.0,
    heartbeat_interval=1.0,
    control_interval=0.2,
    grace_period=5.0,
    **json.loads(os.environ.get("TASKKIT_OPTIONS", "{}")),
)


@kit.task(group="obs", retry_policy=ExponentialBackoff(max_retries=2, base=0.05, jitter=0))
def flaky(n: int) -> None:
    """Fails on every attempt: retried twice, then failed."""
    raise ValueError(f"attempt failed in process {os.getpid()}")


@kit.task(group="obs")
def ok(n: int) -> dict[str, Any]:
    return {"n": n, "pid": os.getpid()}


@kit.task(group="obs")
def unwanted(n: int) -> None:
    raise DiscardTask("not wanted")
