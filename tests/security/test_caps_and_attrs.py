"""The capability table against the kernel's, the unknown-to-this-kernel rule (runc leaves such
names out with a warning), CPU lists, and confine.apply in a real child: what /proc shows."""

from __future__ import annotations

import os

from clonekit import _native
from clonekit.security import attrs, caps, confine, rlimits


def test_the_table_matches_this_kernel():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    assert caps.last_cap() == last
    assert caps.names_known_here() == list(caps.CAPABILITIES)[: last + 1]
    assert caps.CAPABILITIES["CAP_SYS_ADMIN"] == 21 and caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40


def test_names_newer_than_the_kernel_are_left_out_and_reported():
    got = caps.Capabilities.from_names({"bounding": ("CAP_KILL", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"),
                                        "effective": ("CAP_BPF",)}, last=38)
    assert got.bounding == 1 << 5 and got.effective == 0
    assert got.unknown == ("CAP_BPF", "CAP_CHECKPOINT_RESTORE")
    assert got.names("bounding") == ["CAP_KILL"]


def test_cpu_lists_read_as_the_kernel_writes_them():
    assert attrs.parse_cpu_list("0-3,7") == frozenset({0, 1, 2, 3, 7})
    assert attrs.parse_cpu_list("5") == frozenset({5})
    for bad in ("", "a", "3-1", "1-", "-1"):
        try:
            attrs.parse_cpu_list(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


def test_confine_apply_in_a_child_as_proc_shows_it():
    """A forked child confines itself as a container's init would, then reports /proc."""
    conf = confine.Confinement(
        capabilities=caps.Capabilities.from_names({k: ("CAP_KILL", "CAP_NET_RAW") for k in
                                                   ("bounding", "effective", "permitted")}),
        no_new_privileges=True, oom_score_adj=321,
        rlimits=(rlimits.Rlimit("RLIMIT_NOFILE", 77, 88),),
        io_priority=attrs.IoPriority("IOPRIO_CLASS_IDLE", 0),
        scheduler=attrs.Scheduler("SCHED_IDLE"))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            confine.apply(conf, confine.User(uid=0, gid=0, umask=0o077, additional_gids=(7,)), cwd="/")
            with open("/proc/self/status") as f:
                status = f.read()
            with open("/proc/self/limits") as f:
                limits = f.read()
            with open("/proc/self/oom_score_adj") as f:
                oom = f.read().strip()
            with open("/proc/self/stat") as f:
                policy = f.read().rsplit(")", 1)[1].split()[38]
            report = "\n".join([status, limits, f"oom={oom}", f"policy={policy}",
                                f"groups={os.getgroups()}", f"umask={os.umask(0):o}", f"cwd={os.getcwd()}",
                                f"caps={_native.capget()}"])
            os.write(w, report.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        report = f.read()
    os.waitpid(pid, 0)
    fields = dict(line.split(":", 1) for line in report.splitlines() if ":" in line and "\t" in line)
    two = 1 << 5 | 1 << 13
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert int(fields[key].strip(), 16) == two, key
    assert fields["NoNewPrivs"].strip() == "1"
    assert "Max open files            77                   88" in report
    assert "oom=321" in report and "policy=5" in report  # SCHED_IDLE
    assert "groups=[7]" in report and "umask=77" in report and "cwd=/" in report


def test_ambient_names_the_kernel_cannot_raise_are_left_out_as_runc_does():
    """`runc spec` writes ambient = permitted without inheritable: runc warns and goes on."""
    three = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    got = caps.Capabilities.from_names({k: three for k in ("bounding", "effective", "permitted", "ambient")})
    assert got.ambient == 0 and got.not_raisable == ("CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE")
    ok = caps.Capabilities.from_names({"permitted": ("CAP_KILL",), "inheritable": ("CAP_KILL",),
                                       "ambient": ("CAP_KILL",)})
    assert ok.ambient == 1 << 5 and ok.not_raisable == ()
