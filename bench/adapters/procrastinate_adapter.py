"""Procrastinate on PostgreSQL: ``procrastinate worker --concurrency N``, P worker processes.

Standalone (no Django): a ``PsycopgConnector`` on the harness's private database. Workers
are woken by LISTEN/NOTIFY (on by default); nothing else affects latency. Procrastinate
keeps no return values, so a round trip waits for the job's status to become ``succeeded``,
read with ``JobManager.get_job_status`` every millisecond.
"""

from __future__ import annotations

from _common import (
    Spec,
    bin_path,
    enqueue_sync,
    env_db_url,
    exec_cli,
    fill_sync,
    poll_until,
    roundtrips_sync,
    run_in_processes,
    tick,
)
from procrastinate import App, PsycopgConnector
from procrastinate.jobs import Status

QUEUE = "bench"

app = App(connector=PsycopgConnector(conninfo=env_db_url()))


@app.task(name="noop", queue=QUEUE)
def noop() -> None:
    tick()


def _one() -> int:
    return noop.defer()


def _bulk(count: int) -> None:
    noop.batch_defer(*({} for _ in range(count)))


class ProcrastinateAdapter:
    def setup(self, spec: Spec) -> None:
        with app.open():
            app.schema_manager.apply_schema()

    def enqueue(self, spec: Spec) -> dict[str, float]:
        with app.open():
            app.check_connection()
            return enqueue_sync(spec, _one, _bulk)

    def fill(self, spec: Spec) -> None:
        with app.open():
            fill_sync(spec, _one, _bulk)

    def worker(self, spec: Spec) -> None:
        argv = [bin_path("procrastinate"), "--app", "procrastinate_adapter.app",
                "--log-level", "warning", "worker", "--queues", QUEUE,
                "--concurrency", str(spec.threads)]
        run_in_processes(lambda: exec_cli(argv), spec.procs)

    def roundtrip(self, spec: Spec) -> list[float]:
        def one() -> None:
            job_id = _one()
            poll_until(lambda: app.job_manager.get_job_status(job_id) == Status.SUCCEEDED)

        with app.open():
            return roundtrips_sync(one, spec)


ADAPTER = ProcrastinateAdapter()
