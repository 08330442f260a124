"""The synchronous client, for applications without trio: start jobs, signal, read state.

::

    with MeshClient(dsn, app="orders") as client:
        job_id = client.pub("order.placed", {"orderId": "o-1", "sku": "sku-100", "qty": 1})
        record = client.wait(job_id, timeout=30)

It uses a psycopg_pool pool directly and needs no running node of its own: the mesh's
engines and workers do the work. ``wait`` listens on the app's job channel and re-reads the
job at least every ``recheck`` seconds.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql

from mesh.model.ids import job_channel
from mesh.pg import job_queries, operations, workflows
from mesh.pg.database import connection_settings, translate
from mesh.pg.job_queries import JobFailed, JobRecord, JobTimeout


class MeshClient:
    def __init__(self, dsn: str, *, app: str, pool_size: int = 4, recheck: float = 1.0) -> None:
        self.app = app
        self.recheck = recheck
        self.versions = workflows.AppVersions()
        self._pool = psycopg_pool.ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, **connection_settings(f"mesh-client:{app}", 30.0)},
            open=True,
        )

    def __enter__(self) -> MeshClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._pool.connection() as conn:
                return fn(conn, *args, **kwargs)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            raise translate(error) from error

    def pub(
        self,
        topic: str,
        data: Any = None,
        *,
        job_id: str = "",
        pending: float | str | None = None,
    ) -> str:
        """Start a job (or reserve it, with ``pending``); returns its id once committed (see
        :func:`operations.pub`)."""
        return str(
            self._run(
                operations.pub,
                self.app,
                self.versions,
                topic,
                data,
                job_id=job_id,
                pending=pending,
            )
        )

    def pubsub(
        self, topic: str, data: Any = None, *, timeout: float = 60.0, job_id: str = ""
    ) -> dict[str, Any]:
        return self.wait(self.pub(topic, data, job_id=job_id), timeout=timeout).data

    def signal(self, topic: str, data: Any = None, *, code: int = 200) -> int:
        return int(self._run(operations.signal, self.app, self.versions, topic, data, code))

    def interrupt(self, job_id: str, *, reason: str = "interrupted", descend: bool = False) -> bool:
        return bool(
            self._run(
                operations.interrupt,
                self.app,
                self.versions,
                job_id,
                reason=reason,
                descend=descend,
            )
        )

    def get_job(self, job_id: str, *, details: bool = True) -> JobRecord:
        record: JobRecord | None = self._run(job_queries.get_job, self.app, job_id, details=details)
        if record is None:
            raise workflows.UnknownJob(f"no job {job_id!r} in app {self.app!r}")
        return record

    def get_status(self, job_id: str) -> str:
        return self.get_job(job_id, details=False).status

    def get_state(self, job_id: str) -> dict[str, Any]:
        record = self.get_job(job_id)
        return {"metadata": {"jid": record.key, "status": record.status}, "data": record.data}

    def wait(self, job_id: str, *, timeout: float = 60.0) -> JobRecord:
        """Block until the job finishes or persists: its record if done or persisted, else
        :class:`JobFailed`; :class:`JobTimeout` if it is still running after ``timeout``
        seconds."""
        deadline = time.monotonic() + timeout
        try:
            with self._pool.connection() as conn:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(job_channel(self.app))))
                try:
                    while True:
                        record = job_queries.get_job(conn, self.app, job_id, details=False)
                        if record is None:
                            raise workflows.UnknownJob(f"no job {job_id!r} in app {self.app!r}")
                        if record.answered:
                            break
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise JobTimeout(f"job {job_id!r} is still running after {timeout:g} s")
                        for _ in conn.notifies(timeout=min(left, self.recheck), stop_after=1):
                            pass
                finally:
                    conn.execute("UNLISTEN *")
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            raise translate(error) from error
        record = self.get_job(job_id)
        if record.status != "done" and not record.persisted:
            raise JobFailed(record)
        return record
