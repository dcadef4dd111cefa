"""What a seccomp profile costs a container start (python benchmarks/seccomp_compile.py).

podman's default profile (tests/security/data, as podman writes it into config.json on x86_64):

* ``parse``: linux.seccomp -> records, every field checked (runtime/spec_seccomp);
* ``compile (libseccomp)``: records -> BPF with libseccomp, plus the ENOSYS stub;
* ``compile (cached)``: the same through the state root's cache (a hash, one file read);
* ``load in a child``: fork, seccomp(SECCOMP_SET_MODE_FILTER), exit, wait; against ``fork only``.

Ratios are to the cached compile, the path a container start takes from its second run on.
(Not a pytest file: just figures.)
"""

from __future__ import annotations

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "tests", "security")]

from _bench import measure, report  # noqa: E402
from seccomp_helpers import podman_section  # noqa: E402

from clonekit import _native  # noqa: E402
from clonekit.runtime.spec_seccomp import parse_seccomp  # noqa: E402
from clonekit.security import seccomp as sc  # noqa: E402


def _fork_and(fn: object) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            if fn is not None:
                _native.prctl(38, 1)  # no_new_privs
                sc.install(fn)  # type: ignore[arg-type]
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def main() -> None:
    section = podman_section()
    s = parse_seccomp(section)
    assert s is not None
    f = sc.compile_filter(s)
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "seccomp")
        sc.compile_filter(s, cache_dir=cache)
        medians = measure({
            "parse": lambda: parse_seccomp(section),
            "compile (libseccomp)": lambda: sc.compile_filter(s),
            "compile (cached)": lambda: sc.compile_filter(s, cache_dir=cache),
            "fork only": lambda: _fork_and(None),
            "fork + load the filter": lambda: _fork_and(f),
        }, loops=5, rounds=15)
    print(f"podman's default profile: {sum(len(r.names) for r in s.syscalls)} syscall names, "
          f"{len(f.program) // 8} BPF instructions")
    report("seccomp in a container start", medians, "compile (cached)")


if __name__ == "__main__":
    main()
