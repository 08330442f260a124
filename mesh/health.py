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
