"""Small helpers shared by the direct tests."""

from __future__ import annotations

import uuid

from taskkit import Task
from taskkit_redis import RedisBackend


def make_tasks(backend: RedisBackend, group: str, count: int, **fields: object) -> list[Task]:
    """``count`` due tasks of ``group``, created in order on the backend's clock."""
    now = backend.now()
    return [
        Task(
            id=uuid.uuid4().hex,
            group=group,
            name="job",
            data=f"payload-{i}".encode(),
            due=now,
            created=now + i * 1e-6,
            **fields,  # type: ignore[arg-type]
        )
        for i in range(count)
    ]


def drain(backend: RedisBackend, group: str, worker: str = "w") -> list[str]:
    """Claim and complete everything claimable now; returns the ids completed."""
    done = []
    while True:
        batch = backend.claim(group, worker, 50, 30.0, 3)
        if not batch.claims:
            return done
        for claim in batch.claims:
            backend.complete(claim, b"ok:" + claim.task.id.encode())
            done.append(claim.task.id)
