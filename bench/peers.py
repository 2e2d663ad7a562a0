"""The systems under test: what to install, which adapter drives them, how they are configured.

A *peer* is one product (Celery, RQ, ...). Each runs as one or two *systems*: ``tuned`` (its
documented latency and throughput knobs set) and ``defaults`` (out of the box), the latter only
where the two differ. The configuration texts here are what ``docs/performance.md`` prints, so
they must match the adapters.

Versions are pinned so a re-run measures the same code; bump a pin to measure a newer release.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The C reply parser of redis-py. taskkit-redis depends on it, so every peer that talks to
#: Redis through redis-py gets it too: a fair comparison, not a handicap for the peers.
HIREDIS = "hiredis==3.5.0"

#: Workload ids, in table order.
WORKLOADS = ("A-one", "A-bulk", "B1", "B2", "C", "D", "B-async", "B-async-redis", "C-async")

#: The workloads of every Redis peer unless it names its own (``Peer.workloads``).
SYNC_WORKLOADS = ("A-one", "A-bulk", "B1", "B2", "C", "D")

#: Issue 13's asyncio workloads: one worker process running 100 concurrent coroutines that
#: drain a queue of no-op tasks (``B-async``) or of tasks that each await one Redis round
#: trip (``B-async-redis``), and sequential round trips from an async producer to that
#: worker (``C-async``). Only systems with an asyncio worker run them.
ASYNC_WORKLOADS = ("B-async", "B-async-redis", "C-async")

#: Coroutines per worker process in the asyncio workloads.
ASYNC_CONCURRENCY = 100

#: Workload E (issue 6): A, B and C for the Django backends on PostgreSQL and SQLite. Its
#: systems (``suite="E"``) run these workloads against a private database instead of Redis.
E_WORKLOADS = ("A-one", "A-bulk", "B1", "B2", "C")

#: What ``--workloads`` accepts: the workloads, and ``E`` for every E workload.
SELECTABLE = (*WORKLOADS, "E")

#: Workloads the ``defaults`` variant runs: the knobs that differ act on workers and result
#: waiting, not on the producer, so enqueue (A) is measured once per peer.
DEFAULTS_WORKLOADS = ("B1", "C", "D")


@dataclass(frozen=True)
class Peer:
    """One product under test."""

    name: str
    label: str
    adapter: str
    #: pip requirements of its own virtualenv; empty: runs in the project's environment.
    requirements: tuple[str, ...]
    #: distributions whose installed versions are reported.
    distributions: tuple[str, ...]
    #: how "one process x N threads" maps onto this system.
    concurrency: str
    #: the bulk enqueue path used for A-bulk (None: the system has none).
    bulk_api: str | None
    tuned: str
    #: what the defaults variant changes (None: no defaults variant).
    defaults: str | None = None
    #: the variant a target compares against when the peer has both.
    primary: str = "tuned"
    #: ``redis`` (workloads A-D on the private Redis) or ``E`` (the Django backends).
    suite: str = "redis"
    #: E only: ``postgresql`` or ``sqlite``.
    database: str = ""
    #: the virtualenv's name when several peers share one (default: the peer's name).
    env: str = ""
    #: the workloads it runs (default: :data:`SYNC_WORKLOADS`, or E's for an E peer).
    workloads: tuple[str, ...] = ()
    #: one of this repository's systems (never "the fastest peer" of a target).
    ours: bool = False

    @property
    def env_name(self) -> str:
        return self.env or self.name


PEERS: tuple[Peer, ...] = (
    Peer(
        name="raw",
        label="raw redis-py (floor)",
        adapter="raw_adapter",
        requirements=(),
        distributions=("redis",),
        concurrency="N threads per process, each looping on BRPOP (1 s timeout)",
        bulk_api="one pipeline (transaction=False) of N LPUSH commands",
        tuned="LPUSH a bare byte string; workers BRPOP, no result in B; C pushes a reply to a "
        "per-task list that the producer BRPOPs",
    ),
    Peer(
        name="taskkit",
        label="taskkit (this repo, Redis)",
        adapter="taskkit_adapter",
        requirements=(),
        distributions=("taskkit-core", "taskkit-redis", "redis"),
        concurrency="kit.start_processes(P, {group: N}) (N threads per process)",
        bulk_api="kit.initiate_tasks(*dicts) (one backend round trip)",
        tuned="defaults: make_kit('redis://...', handler) with nothing tuned; results stored "
        "(taskkit always stores outcomes); Result.get(timeout) blocks on the backend",
        primary="tuned",
        ours=True,
    ),
    Peer(
        name="taskkit-fn",
        label="taskkit, @kit.task function (this repo, Redis)",
        adapter="taskkit_fn_adapter",
        requirements=(),
        distributions=("taskkit-core", "taskkit-redis", "redis"),
        concurrency="kit.start(P, {group: N}) (N threads per process)",
        bulk_api="kit.initiate_tasks(*(noop.make_task() for ...)) (one backend round trip)",
        tuned="defaults: make_kit('redis://...') with no handler; the same no-op as a plain "
        "function under @kit.task; noop.delay() to enqueue, noop.delay().get(timeout) for "
        "C (its arguments checked and encoded, its result decoded)",
        workloads=("A-one", "A-bulk", "B1", "B2", "C"),
        ours=True,
    ),
    Peer(
        name="taskkit-async",
        label="taskkit, async def function (this repo, Redis)",
        adapter="taskkit_async_adapter",
        requirements=(),
        distributions=("taskkit-core", "taskkit-redis", "redis"),
        concurrency="kit.start(1, {group: 100}) for a group of async def function tasks "
        "(100 coroutines on the worker's event loop)",
        bulk_api=None,
        tuned="defaults: make_kit('redis://...') with no handler, nothing tuned; C-async: "
        "await noop.adelay() then await result.aget(timeout)",
        workloads=ASYNC_WORKLOADS,
        ours=True,
    ),
    Peer(
        name="taskkit024",
        label="taskkit 0.2.4 (PyPI)",
        adapter="taskkit024_adapter",
        requirements=("taskkit==0.2.4", "redis==8.1.0", HIREDIS),
        distributions=("taskkit", "redis"),
        concurrency="kit.start_processes(P, {group: N}) (N threads per process)",
        bulk_api="kit.initiate_tasks(*dicts)",
        tuned="polling_interval=0.005 s for the worker threads (the only latency knob; "
        "Result.get polls on its own back-off)",
        defaults="polling_interval default: max(1, min(4, threads x 0.25)) s",
    ),
    Peer(
        name="rq",
        label="RQ",
        adapter="rq_adapter",
        requirements=("rq==3.0.0", "redis==8.1.0", HIREDIS),
        distributions=("rq", "redis"),
        concurrency="one job at a time per worker process (RQ has no threads): P worker "
        "processes, so B1 = 1 worker and B2 = 2 workers",
        bulk_api="Queue.enqueue_many([Queue.prepare_data(...)]) (one pipeline)",
        tuned="SimpleWorker (runs jobs in the worker process instead of forking a work horse "
        "per job), logging_level=WARNING; results via job.latest_result(timeout) (blocking "
        "XREAD)",
        defaults="Worker (forks a work horse per job), logging_level=INFO",
    ),
    Peer(
        name="celery",
        label="Celery",
        adapter="celery_adapter",
        requirements=("celery[redis]==5.7.0", HIREDIS),
        distributions=("celery", "kombu", "redis"),
        concurrency="--pool=threads --concurrency=N per worker; P workers",
        bulk_api="group(noop.s() for ...).apply_async() (publishes one message per task "
        "on one connection)",
        tuned="Redis broker and result backend; --pool=threads --concurrency=N; "
        "worker_prefetch_multiplier=64 (the optimizing guide's advice for many short "
        "tasks); task_acks_late=False (the default early ack); --without-gossip "
        "--without-mingle --without-heartbeat; --loglevel=WARNING; AsyncResult.get() "
        "(pub/sub)",
        defaults="--pool=prefork --concurrency=N (N child processes per worker), "
        "worker_prefetch_multiplier=4, gossip, mingle and heartbeat on",
    ),
    Peer(
        name="dramatiq",
        label="Dramatiq",
        adapter="dramatiq_adapter",
        requirements=("dramatiq[redis]==2.2.1", HIREDIS),
        distributions=("dramatiq", "redis"),
        concurrency="Worker(broker, worker_threads=N) per process; P processes",
        bulk_api="group(...).run() (enqueues one message at a time)",
        tuned="RedisBroker; Results middleware with RedisBackend (store_results=True); "
        "worker_timeout=5 ms (the consumer's idle back-off ceiling); "
        "message.get_result(block=True) (BRPOPLPUSH)",
        defaults="worker_timeout=1000 ms (the default idle back-off ceiling)",
    ),
    Peer(
        name="huey",
        label="Huey",
        adapter="huey_adapter",
        requirements=("huey==3.5.4", "redis==8.1.0", HIREDIS),
        distributions=("huey", "redis"),
        concurrency="consumer workers=N, worker_type='thread'; P consumer processes",
        bulk_api="task.map(...) (enqueues one task at a time)",
        tuned="RedisHuey(blocking=True, notify_result=True): BRPOP for work and BLPOP for "
        "results; periodic=False (no periodic tasks here); result.get(blocking=True)",
        defaults="notify_result=False: result.get polls from 50 ms with 1.15x back-off",
    ),
    Peer(
        name="arq",
        label="arq",
        adapter="arq_adapter",
        requirements=("arq==0.28.0", HIREDIS),
        distributions=("arq", "redis"),
        concurrency="Worker(max_jobs=N) (asyncio) per process; P processes",
        bulk_api=None,
        tuned="poll_delay=0.005 s for the worker and for job.result(); log_results=False; "
        "max_jobs=N",
        defaults="poll_delay=0.5 s (worker) and 0.5 s (job.result)",
        workloads=SYNC_WORKLOADS + ASYNC_WORKLOADS,
    ),
    Peer(
        name="taskiq",
        label="taskiq + taskiq-redis",
        adapter="taskiq_adapter",
        requirements=("taskiq==0.13.0", "taskiq-redis==1.2.4", HIREDIS),
        distributions=("taskiq", "taskiq-redis", "redis"),
        concurrency="taskiq worker --workers P --max-async-tasks N (async tasks)",
        bulk_api=None,
        tuned="RedisStreamBroker (the README's choice; acknowledged delivery) with "
        "RedisAsyncResultBackend; --max-async-tasks N; --log-level WARNING; "
        "wait_result(check_interval=0.001)",
        defaults="wait_result(check_interval=0.2) (the default), --log-level INFO",
        workloads=SYNC_WORKLOADS + ASYNC_WORKLOADS,
    ),
    # ----------------------------------------------------------------- workload E
    *(
        Peer(
            name=f"taskkit-django-{short}",
            label=f"taskkit-django on {label}",
            adapter="taskkit_adapter",
            requirements=(),
            distributions=("taskkit-core", "taskkit-django", "Django", "psycopg"),
            concurrency="kit.start(P, {group: N}) (N threads per process)",
            bulk_api="kit.initiate_tasks(*dicts) (one statement per 500 tasks)",
            tuned=f"defaults: taskkit.make_kit('{scheme}', handler) (the embedded mode), "
            "nothing tuned; outcomes stored; Result.get(timeout) blocks"
            + (" on LISTEN/NOTIFY" if short == "pg" else " watching PRAGMA data_version"),
            suite="E",
            database=db,
            ours=True,
        )
        for short, label, db, scheme in (
            ("pg", "PostgreSQL", "postgresql", "postgresql://…"),
            ("sqlite", "SQLite", "sqlite", "sqlite:///…"),
        )
    ),
    *(
        Peer(
            name=f"django-tasks-{short}",
            label=f"django-tasks (database backend) on {label}",
            adapter="django_tasks_adapter",
            requirements=(
                "Django==5.2.19",
                "django-tasks==0.12.0",
                "django-tasks-db==0.13.0",
                "psycopg[binary]==3.3.9",
            ),
            distributions=("Django", "django-tasks", "django-tasks-db", "psycopg"),
            concurrency="db_worker runs one task at a time: P x N db_worker processes (B1 = 4, "
            "B2 = 8, C = 4), the same number of tasks in flight as the others",
            bulk_api=None,
            tuned="django_tasks_db.DatabaseBackend (Django 5.2 with the django-tasks backport); "
            "manage.py db_worker --interval 0.005 --no-startup-delay --no-reload -v 0; the "
            "result is awaited with TaskResult.refresh() every 1 ms",
            defaults="db_worker --interval 1 (the default) -v 1",
            suite="E",
            database=db,
            env="django-tasks",
        )
        for short, label, db in (
            ("pg", "PostgreSQL", "postgresql"),
            ("sqlite", "SQLite", "sqlite"),
        )
    ),
    Peer(
        name="procrastinate",
        label="Procrastinate on PostgreSQL",
        adapter="procrastinate_adapter",
        requirements=("procrastinate==3.10.0", "psycopg[binary,pool]==3.3.9"),
        distributions=("procrastinate", "psycopg"),
        concurrency="procrastinate worker --concurrency N (asyncio) per process; P processes",
        bulk_api="task.batch_defer(*kwargs) (one INSERT per batch)",
        tuned="PsycopgConnector; procrastinate worker --concurrency N with its defaults "
        "(LISTEN/NOTIFY on, the 5 s fetch polling only as a fallback): nothing to tune for "
        "latency; it stores no return values, so C awaits the job's status "
        "(JobManager.get_job_status every 1 ms)",
        suite="E",
        database="postgresql",
    ),
)


@dataclass(frozen=True)
class System:
    """One peer in one variant: a row of the tables."""

    peer: Peer
    variant: str
    db: int

    @property
    def key(self) -> str:
        return self.peer.name if self.variant == "tuned" else f"{self.peer.name}/defaults"

    @property
    def label(self) -> str:
        if self.peer.defaults is None:
            return self.peer.label
        return self.peer.label + (" (defaults)" if self.variant == "defaults" else " (tuned)")

    @property
    def config(self) -> str:
        if self.variant == "defaults" and self.peer.defaults:
            return self.peer.defaults
        return self.peer.tuned

    def runs(self, workload: str) -> bool:
        if workload == "A-bulk" and self.peer.bulk_api is None:
            return False
        default = E_WORKLOADS if self.peer.suite == "E" else SYNC_WORKLOADS
        if workload not in (self.peer.workloads or default):
            return False
        return self.variant == "tuned" or workload in DEFAULTS_WORKLOADS


def peer_named(name: str) -> Peer:
    for peer in PEERS:
        if peer.name == name:
            return peer
    raise KeyError(f"unknown peer {name!r}; known: {', '.join(p.name for p in PEERS)}")


def systems_for(
    names: list[str] | None, with_defaults: bool = True, suites: tuple[str, ...] = ("redis", "E")
) -> list[System]:
    """The systems to run, each with its own Redis database number (or E database slot).

    Without ``names``, every peer of ``suites``.
    """
    peers = [peer_named(n) for n in names] if names else [p for p in PEERS if p.suite in suites]
    systems: list[System] = []
    for peer in peers:
        systems.append(System(peer, "tuned", len(systems)))
        if with_defaults and peer.defaults:
            systems.append(System(peer, "defaults", len(systems)))
    return systems
