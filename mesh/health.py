"""System health readings for roll-call profiles (the only module that reads psutil)."""

from __future__ import annotations

import psutil

from mesh.model.quorum import SystemHealth

# cpu_percent(None) compares with the previous call; prime it so the first reading is real.
psutil.cpu_percent(None)


def system_health() -> SystemHealth:
    """CPU % since the previous reading, memory and network counters of this host."""
    memory = psutil.virtual_memory()
    network = psutil.net_io_counters()
    return SystemHealth(
        cpu_percent=psutil.cpu_percent(None),
        memory_used_bytes=memory.used,
        memory_free_bytes=memory.available,
        memory_total_bytes=memory.total,
        network_sent_bytes=network.bytes_sent if network else 0,
        network_received_bytes=network.bytes_recv if network else 0,
    )


def processes_cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds the processes ``pids`` have spent (0 for one gone)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def processes_rss_bytes(pids: list[int]) -> int:
    """Resident memory of the processes ``pids`` (0 for one gone)."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return total


def postgres_process(pid: int) -> tuple[float, int] | None:
    """For a running Postgres postmaster ``pid``: when it started and how many of its
    children serve connections (its helpers, such as the checkpointer, not counted). None
    when no such process runs, or the pid now belongs to another program."""
    try:
        process = psutil.Process(pid)
        command = process.cmdline()
        if "postgres" not in process.name() and not any("postgres" in p for p in command[:1]):
            return None
        children = process.children()
        started = process.create_time()
    except psutil.Error:
        return None
    return started, sum(1 for child in children if _serves_a_connection(child))


def _serves_a_connection(process: psutil.Process) -> bool:
    try:
        title = " ".join(process.cmdline())
    except psutil.Error:
        return False
    # Helpers title themselves "postgres: checkpointer" etc.; a connection "postgres: user db".
    helpers = ("checkpointer", "background writer", "walwriter", "autovacuum", "logical")
    return title.startswith("postgres:") and not any(h in title for h in helpers)


def process_exists(pid: int) -> bool:
    return psutil.pid_exists(pid)


def parent_pid(pid: int) -> int | None:
    """The parent of process ``pid`` (a backend's is the postmaster); None if not visible."""
    try:
        return psutil.Process(pid).ppid() or None
    except psutil.Error:
        return None


def postgres_cpu_seconds(postmaster_pid: int | None) -> float | None:
    """CPU seconds (user plus system) of the Postgres server ``postmaster_pid`` and its
    processes now. None when the server is not on this host or not readable."""
    if postmaster_pid is None:
        return None
    try:
        postmaster = psutil.Process(postmaster_pid)
        processes = [postmaster, *postmaster.children()]
    except psutil.Error:
        return None
    return processes_cpu_seconds([p.pid for p in processes])
