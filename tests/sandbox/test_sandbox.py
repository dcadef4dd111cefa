"""The Sandbox API on the real kernel: what a command sees inside (namespaces, filesystem,
ids, confinement), what comes back (Result), and the errors that name the step."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys

import pytest
from sb_helpers import last_json, py

import clonekit
from clonekit.runtime.busybox import build_rootfs
from clonekit.sandbox import Sandbox, SandboxError, SandboxUsageError
from clonekit.sandbox import prebuilt as sandbox_prebuilt


def test_output_status_and_timing(plain: Sandbox) -> None:
    r = plain.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (r.stdout, r.stderr, r.returncode, r.signal) == (b"out\n", b"err\n", 7, None)
    assert not (r.timed_out or r.oom_killed or r.output_truncated)
    assert 0 < r.wall_time < 5 and r.cpu_time >= 0 and r.peak_memory and r.peak_memory > 0


def test_a_signal_is_reported_like_subprocess(plain: Sandbox) -> None:
    r = plain.run(py("import ctypes; ctypes.string_at(0)"))  # a fault kills even a pid 1
    assert (r.signal, r.returncode) == (11, -11)
    # the command is pid 1 of its PID namespace: a signal it sends itself without a handler is
    # ignored, as for any init (the kernel's rule); its run still ends when it exits
    r = plain.run(["/bin/sh", "-c", "kill -TERM $$; echo alive"])
    assert (r.stdout, r.returncode, r.signal) == (b"alive\n", 0, None)


def test_namespaces_are_fresh(plain: Sandbox) -> None:
    code = ("import os, json, socket; print(json.dumps({'pid': os.getpid(), 'host': socket.gethostname(),"
            " 'ns': {k: os.readlink('/proc/self/ns/' + k) for k in ('mnt','pid','net','ipc','uts','cgroup')},"
            " 'nets': sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:])}))")
    seen = last_json(plain.run(py(code)).stdout)
    assert isinstance(seen, dict)
    assert seen["pid"] == 1 and seen["host"] == "sandbox" and seen["nets"] == ["lo"]
    for kind, ns in seen["ns"].items():
        assert ns != os.readlink(f"/proc/self/ns/{kind}"), kind


def test_the_default_tree(plain: Sandbox) -> None:
    code = r"""
import os, json
out = {'root': sorted(os.listdir('/')), 'dev': sorted(os.listdir('/dev')), 'cwd': os.getcwd()}
for path in ('/x', '/etc/x', '/usr/x', '/dev/x', '/proc/sys/kernel/hostname'):
    try:
        open(path, 'w').write('x'); out[path] = 'written'
    except OSError as e:
        out[path] = e.errno
open('/tmp/ok', 'w').write('x'); open('/dev/shm/ok', 'w').write('x')
out['tmp'] = sorted(os.listdir('/tmp'))
out['mounts'] = sorted(l.split()[4] + ' ' + l.split()[5].split(',')[0] for l in open('/proc/self/mountinfo'))
out['ids'] = (os.getuid(), os.getgid(), os.getgroups())
out['shadow'] = os.access('/etc/shadow', os.R_OK)
print(json.dumps(out))
"""
    seen = last_json(plain.run(py(code)).stdout)
    assert isinstance(seen, dict)
    assert {"usr", "etc", "tmp", "proc", "dev"} <= set(seen["root"]) and "root" not in seen["root"]
    assert set(seen["dev"]) >= {"null", "zero", "full", "random", "urandom", "tty", "shm", "fd"}
    assert seen["cwd"] == "/tmp" and seen["tmp"] == ["ok"]
    assert seen["/x"] == errno.EROFS and seen["/usr/x"] == errno.EROFS and seen["/etc/x"] == errno.EROFS
    assert seen["/dev/x"] in (errno.EACCES, errno.EROFS) and seen["/proc/sys/kernel/hostname"] == errno.EACCES
    assert "/usr ro" in seen["mounts"] and "/etc ro" in seen["mounts"] and "/ ro" in seen["mounts"]
    assert "/tmp rw" in seen["mounts"]
    assert seen["ids"] == [65534, 65534, [65534]] or seen["ids"][:2] == [65534, 65534]
    assert seen["shadow"] is False  # nobody: the host's root-only files stay closed


def test_confinement(plain: Sandbox) -> None:
    status = plain.run(["cat", "/proc/self/status"]).stdout.decode()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, cap
    assert fields["NoNewPrivs"].strip() == "1" and fields["Seccomp"].strip() == "2"
    fds = plain.run(["ls", "/proc/self/fd"]).stdout.split()
    assert sorted(fds) == [b"0", b"1", b"2", b"3"]  # 3: ls's own directory fd


def test_no_signal_disposition_is_inherited(make) -> None:
    """Whatever the caller ignores (Python ignores SIGPIPE; a caller may ignore SIGTERM or SIGINT),
    the command starts with every signal at its default and none blocked."""
    code = ("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n"
            "from clonekit.sandbox import Sandbox\n"
            "with Sandbox() as sb:\n"
            "    print(sb.run(['grep', '-E', '^Sig(Ign|Blk)', '/proc/self/status']).stdout.decode())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000"]


def test_input_env_cwd_hostname_uid(make) -> None:
    sb = make(env={"GREETING": "hi"}, cwd="/usr", hostname="box", uid=1234, gid=4321)
    r = sb.run(["/bin/sh", "-c", 'cat; echo "$GREETING $(pwd) $(hostname) $(id -u) $(id -g) $HOME"'],
               input=b"from stdin\n")
    assert r.stdout == b"from stdin\nhi /usr box 1234 4321 /tmp\n"
    big = os.urandom(1 << 20)
    assert sb.run(["cat"], input=big).stdout == big


def test_binds_and_tmpfs(make, tmp_path) -> None:
    (tmp_path / "in").write_text("host file\n")
    rw = tmp_path / "rw"
    rw.mkdir()
    os.chmod(rw, 0o777)
    sb = make(ro_binds=[f"{tmp_path / 'in'}:/data/in"], binds=[f"{rw}:/data/rw"], tmpfs={"/scratch": "1m"})
    r = sb.run(["/bin/sh", "-c", "cat /data/in; echo new > /data/rw/out; echo x > /data/in || echo ro;"
                " dd if=/dev/zero of=/scratch/f bs=1k count=2048 2>/dev/null || echo full"])
    assert r.stdout == b"host file\nro\nfull\n", r.stderr
    assert (rw / "out").read_text() == "new\n"  # a read-write bind writes through to the host


@pytest.mark.parametrize("prebuilt", [True, False], ids=["tree-built-ahead", "tree-laid-out-per-run"])
def test_both_ways_to_the_tree_show_the_same(make, tmp_path, monkeypatch, prebuilt: bool) -> None:
    """As root on Linux 6.15+ the tree is built once and cloned per run; elsewhere (and for
    images, and rootless) it is laid out per run: the command sees the same either way."""
    monkeypatch.setattr(sandbox_prebuilt, "ENABLED", prebuilt)
    (tmp_path / "f").write_text("file\n")
    (tmp_path / "d").mkdir()
    sb = make(ro_binds=[f"{tmp_path / 'f'}:/opt/f", f"{tmp_path / 'd'}:/tmp/in/d"], tmpfs=["/tmp/t", "/srv"])
    assert (sb._prebuilt is not None) == prebuilt
    script = ("cat /opt/f; ls /tmp/in; ls /; ls /dev | tr '\\n' ' '; echo; "
              "awk '{print $5, substr($6, 1, 2)}' /proc/self/mountinfo | sort")
    seen = sb.run(["/bin/sh", "-c", script]).stdout.decode().splitlines()
    assert seen[:2] == ["file", "d"]
    assert {"usr", "etc", "tmp", "proc", "dev", "srv", "opt"} <= set(seen[2:])
    mounts = set(seen)
    assert {"/ ro", "/usr ro", "/etc ro", "/tmp rw", "/proc rw", "/dev ro", "/dev/shm rw", "/dev/null ro",
            "/opt/f ro", "/tmp/in/d ro", "/tmp/t rw", "/srv rw"} <= mounts, seen


def test_rootfs_busybox(make, tmp_path) -> None:
    root = build_rootfs(str(tmp_path / "rootfs"))
    sb = make(rootfs=root)
    r = sb.run(["/bin/sh", "-c", "ls /bin/busybox && echo x > /y || echo ro; echo ok > /tmp/t && cat /tmp/t;"
                " pwd"])
    assert r.stdout == b"/bin/busybox\nro\nok\n/\n", r.stderr
    assert not os.path.exists(tmp_path / "rootfs" / "tmp" / "t")  # /tmp is the run's own


def test_network_loopback_and_host(make) -> None:
    code = r"""
import socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
c = socket.create_connection(s.getsockname()); a, _ = s.accept(); c.sendall(b'ping')
print(a.recv(4).decode())
try:
    socket.create_connection(('192.0.2.1', 80), timeout=1)
except OSError as e:
    print(e.errno)
"""
    r = make(network="loopback").run(py(code))
    assert r.stdout.split() == [b"ping", str(errno.ENETUNREACH).encode()], r.stderr
    host = make(network="host").run(["cat", "/proc/net/dev"]).stdout.decode()
    with open("/proc/net/dev") as f:
        assert sorted(line.split(":")[0] for line in host.splitlines()[2:]) == \
            sorted(line.split(":")[0] for line in f.readlines()[2:])
    code = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "try:\n    socket.create_connection(s.getsockname(), timeout=1)\n"
            "except OSError as e:\n    print(e.errno)")
    r = make(network="none").run(py(code))
    assert r.stdout.split() == [str(errno.ENETUNREACH).encode()], r.stderr  # lo is there, but down


def test_exec_errors_name_the_step(plain: Sandbox) -> None:
    with pytest.raises(SandboxError) as info:
        plain.run(["no-such-program"])
    assert info.value.errno == errno.ENOENT and info.value.step == "exec no-such-program"
    assert "PATH=" in str(info.value)
    with pytest.raises(SandboxError) as info:
        plain.run(["/etc/passwd"])
    assert info.value.errno == errno.EACCES
    assert isinstance(info.value, clonekit.Error) and isinstance(info.value, OSError)


def test_a_failed_child_step_names_it(make) -> None:
    with pytest.raises(SandboxError) as info:
        make(hostname="h" * 100).run(["/bin/true"])  # longer than the kernel's 64
    assert info.value.errno == errno.EINVAL and info.value.step == f"set the hostname {'h' * 100}"


def test_a_rootfs_without_mount_points_is_refused_first(make, tmp_path) -> None:
    root = build_rootfs(str(tmp_path / "rootfs"))
    os.rmdir(os.path.join(root, "proc"))
    with pytest.raises(SandboxUsageError, match="has no /proc"):
        make(rootfs=root, ro_binds=[f"{tmp_path}:/mnt"])
    with pytest.raises(SandboxUsageError, match="has no /proc, /data"):
        make(rootfs=root, ro_binds=[f"{tmp_path}:/data"])


def test_bad_options(make) -> None:
    for options in ({"network": "wifi"}, {"memory": "lots"}, {"cwd": "tmp"}, {"binds": ["/no/such:/x"]},
                    {"binds": ["/tmp:rel"]}, {"pids": 0}, {"rootfs": "/no/such/dir"}):
        with pytest.raises(SandboxUsageError):
            make(**options)
    sb = make()
    sb.close()
    with pytest.raises(SandboxUsageError):
        sb.run(["/bin/true"])


def test_run_async(plain: Sandbox) -> None:
    async def main() -> list[bytes]:
        results = await asyncio.gather(*(plain.run_async(["echo", str(i)]) for i in range(4)))
        return [r.stdout for r in results]

    assert asyncio.run(main()) == [b"0\n", b"1\n", b"2\n", b"3\n"]


def test_exported_lazily() -> None:
    assert clonekit.Sandbox is Sandbox and clonekit.SandboxError is SandboxError
