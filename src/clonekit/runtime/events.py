"""runc's ``events``: the container's cgroup stats once (``--stats``) or every interval, and an
``oom`` event whenever the kernel's OOM killer acts in its group.  Each event is a dict in
runc's shape (``{"type": "stats", "id": ..., "data": {...}}``, ``{"type": "oom", "id": ...}``),
handed to ``emit`` as it happens."""

from __future__ import annotations

import time

from .errors import ContainerStateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..cgroups import Cgroup
    from .state import StateDir

__all__ = ["stats", "stream"]


def _group(states: StateDir, container_id: str) -> Cgroup:
    from ..cgroups import Cgroup
    from ..errors import UsageError

    st = states.load(container_id)
    if st.status(states.path(container_id)) == "stopped":
        raise ContainerStateError(f"container with id {container_id} is not running: its init has "
                                  f"exited, so it has no usage to report (`clonekit delete {container_id}`)")
    if not st.cgroup:
        raise UsageError(f"container {container_id} has no cgroup (created with --cgroup-manager disabled "
                         "or rootless without a delegated group), so there are no stats to read")
    return Cgroup.load(st.cgroup)


def stats(states: StateDir, container_id: str) -> dict[str, object]:
    """One ``stats`` event for the container."""
    from ..cgroups.stats import collect

    return {"type": "stats", "id": container_id, "data": collect(_group(states, container_id))}


def stream(states: StateDir, container_id: str, interval: float,
           emit: Callable[[dict[str, object]], None]) -> None:
    """Emit a ``stats`` event every ``interval`` seconds and an ``oom`` event on each OOM, until
    the container's group is gone (or, without a memory controller, its init has exited)."""
    import select

    from ..cgroups.oom import OomWatch
    from ..cgroups.stats import collect

    if interval <= 0:
        from ..errors import UsageError

        raise UsageError(f"--interval {interval:g}s: the stats interval must be greater than 0")
    cgroup = _group(states, container_id)
    memory = cgroup.controller_dir("memory")
    version = 1 if memory is not None and memory != cgroup.v2_dir else 2
    watch = OomWatch(memory, version=version) if memory is not None else None
    poller = select.poll()
    if watch is not None:
        poller.register(watch.fileno(), watch.events)
    try:
        due = time.monotonic() + interval
        while True:
            ready = poller.poll(max(0.0, due - time.monotonic()) * 1000)
            if ready and watch is not None:
                if watch.read():  # one event per wake-up, as runc (the kernel may count several)
                    emit({"type": "oom", "id": container_id})
                if watch.closed:
                    return
            if time.monotonic() >= due:
                due += interval
                if watch is None and not states.load(container_id).init_alive():
                    return
                if cgroup.exists():
                    emit({"type": "stats", "id": container_id, "data": collect(cgroup)})
    finally:
        if watch is not None:
            watch.close()
