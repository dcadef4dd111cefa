"""Device rules enforced by the kernel: a v1 devices group and a BPF program on a cgroup2 group,
each with a forked child moved into it that opens and makes device nodes.

Groups live under /sys/fs/cgroup/<hierarchy>/clonekit-test/<uuid> and are removed (with the
clonekit-test parent if this test made it)."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator

import pytest

from clonekit.errors import KernelError
from clonekit.security.devices import DeviceRule, apply_v1, attach_v2, effective_rules

V1 = "/sys/fs/cgroup/devices"
DENY_ALL = DeviceRule(allow=False)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="device cgroups need root")


def _cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            if right.split()[0] == "cgroup2":
                return left.split()[4]
    return None


def make_group(hierarchy: str) -> Iterator[str]:
    top = os.path.join(hierarchy, "clonekit-test")
    made_top = False
    if not os.path.isdir(top):
        os.mkdir(top)
        made_top = True
    group = os.path.join(top, uuid.uuid4().hex)
    os.mkdir(group)
    try:
        yield group
    finally:
        os.rmdir(group)
        if made_top:
            try:
                os.rmdir(top)
            except OSError:
                pass  # another test's group lives there now


@pytest.fixture
def v1_group() -> Iterator[str]:
    if not os.path.exists(os.path.join(V1, "devices.allow")):
        pytest.skip("no v1 devices controller at /sys/fs/cgroup/devices")
    yield from make_group(V1)


@pytest.fixture
def v2_group() -> Iterator[str]:
    mount = _cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 hierarchy is mounted")
    yield from make_group(mount)


@pytest.fixture
def nodes(tmp_path) -> str:
    """Device nodes on a filesystem that allows them (not the nodev /dev/shm): kmsg 1:11, null."""
    os.mknod(tmp_path / "kmsg", 0o600 | 0o020000, os.makedev(1, 11))
    os.mknod(tmp_path / "null", 0o666 | 0o020000, os.makedev(1, 3))
    return str(tmp_path)


def in_group(group: str, probe: str, nodes: str) -> dict[str, int]:
    """Fork a child, move it into ``group`` (its cgroup.procs), let it try each operation of
    ``probe`` ("open" / "mknod"), and return {operation: 0 or errno}."""
    ops = {
        "open /dev/null": lambda: os.close(os.open("/dev/null", os.O_RDWR)),
        "open null node": lambda: os.close(os.open(f"{nodes}/null", os.O_RDONLY)),
        "open kmsg node": lambda: os.close(os.open(f"{nodes}/kmsg", os.O_RDONLY)),
        "write kmsg node": lambda: os.close(os.open(f"{nodes}/kmsg", os.O_WRONLY)),
        "mknod kmsg": lambda: os.mknod(f"{nodes}/kmsg2", 0o600 | 0o020000, os.makedev(1, 11)),
        "mknod null": lambda: os.mknod(f"{nodes}/null2", 0o600 | 0o020000, os.makedev(1, 3)),
    }
    go_r, go_w = os.pipe()
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only os calls, then _exit
        try:
            os.close(go_w)
            os.close(res_r)
            os.read(go_r, 1)
            out = []
            for name, op in ops.items():
                try:
                    op()
                    out.append(f"{name}=0")
                except OSError as exc:
                    out.append(f"{name}={exc.errno}")
            os.write(res_w, ";".join(out).encode())
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(res_w)
    try:
        with open(os.path.join(group, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        os.write(go_w, b"x")
        text = os.read(res_r, 4096).decode()
    finally:
        os.close(go_w)
        os.close(res_r)
        os.waitpid(pid, 0)
    for leftover in ("kmsg2", "null2"):
        try:
            os.unlink(f"{nodes}/{leftover}")
        except FileNotFoundError:
            pass
    return {k: int(v) for k, v in (item.split("=") for item in text.split(";"))}


RUNC_SPEC = effective_rules([DENY_ALL], [])
ONLY_NULL = [DENY_ALL, DeviceRule(True, "c", 1, 3, "rwm")]
NO_KMSG_WRITES = [DeviceRule(True), DeviceRule(False, "c", 1, 11, "w")]

EXPECT = {  # rules -> {operation: errno}
    "runc spec": (RUNC_SPEC, {"open /dev/null": 0, "open null node": 0, "open kmsg node": errno.EPERM,
                              "write kmsg node": errno.EPERM, "mknod kmsg": 0, "mknod null": 0}),
    "only null": (ONLY_NULL, {"open /dev/null": 0, "open null node": 0, "open kmsg node": errno.EPERM,
                              "write kmsg node": errno.EPERM, "mknod kmsg": errno.EPERM,
                              "mknod null": 0}),
    "deny kmsg writes": (NO_KMSG_WRITES, {"open /dev/null": 0, "open null node": 0, "open kmsg node": 0,
                                          "write kmsg node": errno.EPERM, "mknod kmsg": 0,
                                          "mknod null": 0}),
}


@pytest.mark.parametrize("name", list(EXPECT))
def test_v1_devices_group_enforces(v1_group: str, nodes: str, name: str) -> None:
    rules, want = EXPECT[name]
    apply_v1(v1_group, rules)
    assert in_group(v1_group, name, nodes) == want


def test_v1_devices_list_is_runcs(v1_group: str) -> None:
    apply_v1(v1_group, RUNC_SPEC)
    with open(os.path.join(v1_group, "devices.list")) as f:
        assert f.read().split("\n")[:3] == ["b *:* m", "c *:* m", "c 1:3 rwm"]


def test_v1_applying_again_writes_nothing_new(v1_group: str) -> None:
    apply_v1(v1_group, ONLY_NULL)
    with open(os.path.join(v1_group, "devices.list")) as f:
        first = f.read()
    apply_v1(v1_group, ONLY_NULL)  # an allow list now: only differences are written
    with open(os.path.join(v1_group, "devices.list")) as f:
        assert f.read() == first == "c 1:3 rwm\n"


def test_v1_error_names_the_group(tmp_path) -> None:
    with pytest.raises(KernelError) as info:
        apply_v1(str(tmp_path / "missing"), RUNC_SPEC)
    assert info.value.errno == errno.ENOENT
    assert "missing" in str(info.value) and "devices" in str(info.value)


@pytest.mark.parametrize("name", list(EXPECT))
def test_v2_bpf_program_enforces(v2_group: str, nodes: str, name: str) -> None:
    rules, want = EXPECT[name]
    fds_before = set(os.listdir("/proc/self/fd"))
    fd = os.open(v2_group, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attach_v2(fd, rules)
    finally:
        os.close(fd)
    assert set(os.listdir("/proc/self/fd")) == fds_before  # the program fd is not kept
    assert in_group(v2_group, name, nodes) == want


def test_v2_attach_to_a_non_cgroup_fails_clearly(tmp_path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(KernelError) as info:
            attach_v2(fd, RUNC_SPEC)
    finally:
        os.close(fd)
    assert info.value.step == "attach the BPF device program"
    assert str(tmp_path) in str(info.value)


def test_the_verifier_log_reaches_the_error() -> None:
    from clonekit import _native

    with pytest.raises(OSError) as info:
        _native.bpf_prog_load_cgroup_device(bytes(8))  # one no-op-ish insn and no exit
    assert info.value.errno == errno.EINVAL
    assert "insn" in str(info.value.strerror)
