"""process.terminal: the pty a container gets, its console socket, and a foreground `run`.

The console socket is received here as conmon and containerd's shim receive it (a unix socket
server; recvmsg with SCM_RIGHTS), and the same bundle runs under runc for comparison.  The
foreground `run` gets a pty made by the test as its terminal, so its raw mode, window size,
typed ^C and the restored settings can be read back; `script` (util-linux) runs it once as a
user's shell would."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import termios
import time
import uuid

import pytest
from runtime_helpers import clonekit_test_groups

TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/ptmx"), reason="no /dev/ptmx on this host")


def with_terminal(config: dict, size: tuple[int, int] | None = (33, 77), uid: int = 0) -> None:
    config["process"]["terminal"] = True
    config["process"]["user"] = {"uid": uid, "gid": 0}
    if size is not None:
        config["process"]["consoleSize"] = {"height": size[0], "width": size[1]}


class ConsoleReceiver:
    """The server end of --console-socket: one connection, runc's message (a name and fds)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.server.settimeout(30)
        self.name = b""
        self.fds: list[int] = []

    def receive(self) -> int:
        """Accept the runtime's connection and take the master it sent."""
        conn, _ = self.server.accept()
        with conn:
            self.name, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * 8))
        for level, kind, data in ancillary:
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            self.fds += [int(n) for n in struct.unpack(f"{len(data) // 4}i", data[: len(data) // 4 * 4])]
        assert self.fds, "the runtime sent no fd"
        return self.fds[0]

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.server.close()


def read_until_hangup(fd: int, timeout: float = 30.0) -> bytes:
    """What the container writes to its terminal, until the last process holding the slave is
    gone (the master then reads EIO)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError as exc:
            assert exc.errno == errno.EIO, exc
            return out
        if not chunk:
            return out
        out += chunk
    raise AssertionError(f"the container's terminal did not hang up: {out!r}")


def read_until(fd: int, marker: bytes, timeout: float = 30.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out:
        if time.monotonic() > deadline:
            raise AssertionError(f"{marker!r} never came: {out!r}")
        try:
            chunk = os.read(fd, 65536)
        except OSError as exc:
            raise AssertionError(f"{marker!r} never came (EIO): {out!r}") from exc
        out += chunk
    return out


OBSERVE = ("tty; for f in 0 1 2; do readlink /proc/self/fd/$f; done; "
           "stat -c '%F %t:%T %u' /dev/console /dev/pts/0; stty size; stty -a | grep -o -- '-*onlcr'; "
           "echo ctty > /dev/tty; ls -l /dev/ptmx | grep -o -- '-> pts/ptmx'")


def run_with_socket(rt, pair, tmp_path, args: list[str], uid: int = 0) -> tuple[bytes, int, str]:
    """create --console-socket + start under ``rt``: (terminal output, fds received, name)."""
    receiver = ConsoleReceiver(str(tmp_path / f"console-{rt.name}-{uuid.uuid4().hex[:6]}.sock"))
    try:
        cid, bundle = pair.bundle(rt, args, (lambda c: with_terminal(c, uid=uid),))
        rt.cli("create", "--console-socket", receiver.path, "--bundle", bundle, cid, check=True)
        master = receiver.receive()
        rt.cli("start", cid, check=True)
        out = read_until_hangup(master)
        return out, len(receiver.fds), receiver.name.decode()
    finally:
        receiver.close()


def test_console_socket_gets_the_pty_as_under_runc(pair, tmp_path) -> None:
    """The master arrives as runc sends it (the name /dev/ptmx, one fd); inside, the slave is the
    container's /dev/pts/0, /dev/console, stdio and controlling terminal; consoleSize applies."""
    seen = {rt.name: run_with_socket(rt, pair, tmp_path, ["/bin/sh", "-c", OBSERVE]) for rt in pair.each()}
    out, nfds, name = seen["clonekit"]
    assert (nfds, name) == (1, "/dev/ptmx")
    # tty and fds 0-2; /dev/console and /dev/pts/0 are the same pty (136:0, 0x88); consoleSize;
    # the pty as the receiver gets it (onlcr on); /dev/tty opens (a controlling terminal)
    assert out.decode().split("\r\n") == [*["/dev/pts/0"] * 4, *["character special file 88:0 0"] * 2,
                                          "33 77", "onlcr", "ctty", "-> pts/ptmx", ""], out
    if "runc" in seen:
        assert seen["runc"] == seen["clonekit"]


def test_the_user_owns_its_terminal_as_under_runc(pair, tmp_path) -> None:
    """runc's fixStdioPermissions: the slave is chowned to process.user.uid (gid and mode kept)."""
    program = ["/bin/sh", "-c", "stat -c '%u %g %a' $(tty); id -u"]
    seen = {rt.name: run_with_socket(rt, pair, tmp_path, program, uid=1000)[0] for rt in pair.each()}
    assert seen["clonekit"] == b"1000 0 620\r\n1000\r\n", seen
    if "runc" in seen:
        assert seen["runc"] == seen["clonekit"]


def test_commands_typed_into_the_master_run_in_the_container(bundles, tmp_path) -> None:
    """An interactive shell on the pty: what is written to the master runs there, and the
    init's stdio (seen from the host through /proc) is the slave of the master we hold."""
    receiver = ConsoleReceiver(str(tmp_path / "console.sock"))
    cid, bundle, _ = bundles.new(["/bin/sh"], edit=[with_terminal])
    try:
        bundles.cli("create", "--console-socket", receiver.path, "--bundle", bundle, cid)
        master = receiver.receive()
        pid = int(bundles.cli("state", cid).stdout.split('"pid": ')[1].split(",")[0])
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
        for fd in (0, 1, 2):
            st = os.stat(f"/proc/{pid}/fd/{fd}")
            assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (136, number)
        bundles.cli("start", cid)
        os.write(master, b"echo hello-$((6*7)); exit 3\n")
        out = read_until_hangup(master)
        assert b"hello-42" in out
    finally:
        receiver.close()


def test_terminal_rules_and_wording_as_runc(pair, tmp_path) -> None:
    """create (or run -d) with a terminal needs --console-socket; --console-socket needs a
    terminal and a detached container; a socket nobody listens on fails create.  Every refusal
    leaves nothing behind."""
    before = clonekit_test_groups()
    missing = str(tmp_path / "nobody.sock")
    no_socket = "cannot allocate tty if {} will detach without setting console socket"
    cases = [
        (("create",), with_terminal, no_socket),
        (("run", "-d"), with_terminal, no_socket),
        (("run", "-d", "--console-socket", missing), lambda c: None,
         "cannot use console socket if {} will not detach or allocate tty"),
        (("run", "--console-socket", missing), with_terminal,
         "cannot use console socket if {} will not detach or allocate tty"),
        (("create", "--console-socket", missing), with_terminal, "no such file or directory"),
    ]
    for verb, edit, wording in cases:
        for rt in pair.each():
            cid, bundle = pair.bundle(rt, ["true"], (edit,))
            result = rt.cli(*verb, "--bundle", bundle, cid)
            assert result.returncode == 1, (rt.name, verb, result)
            assert wording.format(rt.name).lower() in result.stderr.lower(), (rt.name, verb, result.stderr)
            if rt.name == "clonekit":
                assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
                assert not os.path.exists(os.path.join(rt.root, cid))
    assert clonekit_test_groups() == before


def test_foreground_run_without_any_terminal_is_refused(pair) -> None:
    """No console socket and nothing to connect the pty to: refused before anything is made
    (runc: "open /dev/tty: no such device or address")."""
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, ["true"], (with_terminal,))
        proc = subprocess.run(rt.command("run", "--bundle", bundle, cid), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, start_new_session=True, timeout=60)
        assert proc.returncode == 1, proc
        if rt.name == "clonekit":
            assert "no terminal to connect it to" in proc.stderr and len(proc.stderr.splitlines()) == 1
            assert not os.path.exists(os.path.join(rt.root, cid))
        else:
            assert "/dev/tty" in proc.stderr


# -- the foreground run on a terminal of the test's ----------------------------------------------
class HostTerminal:
    """A pty whose slave is the runtime's controlling terminal and stdio (a user's terminal)."""

    def __init__(self, rows: int, cols: int) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.master, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.before = termios.tcgetattr(self.slave)

    def start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        def controlling() -> None:
            fcntl.ioctl(0, TIOCSCTTY, 0)

        return subprocess.Popen(argv, stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                start_new_session=True, preexec_fn=controlling)

    def resize(self, rows: int, cols: int) -> None:
        """As a terminal emulator does: the kernel sends SIGWINCH to the foreground group."""
        fcntl.ioctl(self.master, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def foreground(bundles, args: list[str], rows: int = 24, cols: int = 100):  # type: ignore[no-untyped-def]
    cid, bundle, _ = bundles.new(args, edit=[lambda c: with_terminal(c, size=None)])
    host = HostTerminal(rows, cols)
    proc = host.start([sys.executable, "-m", "clonekit", "--root", bundles.root, "run", "--bundle", bundle,
                       cid])
    return host, proc


def test_foreground_run_connects_the_callers_terminal(bundles) -> None:
    """Window size copied at start and on SIGWINCH; a typed ^C reaches the container as SIGINT
    (the caller's terminal is raw); exit status passed through; the terminal restored."""
    host, proc = foreground(bundles, ["/bin/sh", "-c", 'trap "stty size; echo winched" WINCH; '
                                      'trap "echo got-INT; exit 5" INT; stty size; echo ready; '
                                      "while :; do sleep 0.05; done"])
    try:
        out = read_until(host.master, b"ready")
        assert b"24 100\r\n" in out
        raw = termios.tcgetattr(host.slave)
        assert not raw[3] & (termios.ICANON | termios.ECHO | termios.ISIG)  # raw while it runs
        assert raw[1] & termios.OPOST  # ... but output still processed, as runc leaves it
        host.resize(30, 90)
        assert b"30 90\r\n" in read_until(host.master, b"winched")
        os.write(host.master, b"\x03")
        read_until(host.master, b"got-INT")
        assert proc.wait(timeout=30) == 5
        assert termios.tcgetattr(host.slave) == host.before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        host.close()


def test_foreground_run_under_script_as_runc(pair, tmp_path) -> None:
    """`script -qc` (util-linux) gives the runtime a terminal as a user's shell does: the same
    bytes come out of both runtimes, with the status, and the terminal is as it was."""
    script = shutil.which("script")
    if script is None:
        pytest.skip("util-linux script is not installed")
    program = ["/bin/sh", "-c", "tty; echo two words; stty -a 2>/dev/null | grep -o -- '-*onlcr'; exit 7"]
    seen = {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, program, (lambda c: with_terminal(c, size=None),))
        before, after = tmp_path / f"{rt.name}.before", tmp_path / f"{rt.name}.after"
        inner = (f"stty -g > {before}; {' '.join(rt.command('run', '--bundle', bundle, cid))}; "
                 f"echo status=$?; stty -g > {after}")
        typescript = tmp_path / f"{rt.name}.typescript"
        subprocess.run([script, "-qc", inner, str(typescript)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=True)
        body = typescript.read_bytes().split(b"\n", 1)[1]  # after "Script started ..."
        seen[rt.name] = body.replace(b"^@", b"").split(b"\nScript done")[0]
        assert before.read_text() == after.read_text(), f"{rt.name} left the terminal changed"
    assert seen["clonekit"] == b"/dev/pts/0\r\ntwo words\r\n-onlcr\r\nstatus=7\r\n", seen
    if "runc" in seen:
        assert seen["runc"] == seen["clonekit"]


def test_console_size_too_large_is_refused(bundles) -> None:
    cid, bundle, _ = bundles.new(["true"], edit=[lambda c: with_terminal(c, size=(70000, 80))])
    result = bundles.cli("run", "-d", "--console-socket", "/nonexistent.sock", "--bundle", bundle, cid,
                         check=False)
    assert result.returncode == 1
    assert "$.process.consoleSize" in result.stderr and "65535" in result.stderr


def test_rootless_container_gets_its_terminal(user) -> None:
    """`clonekit spec --rootless` with terminal true, run by an unprivileged user: the pty comes
    from the container's own devpts in its user namespace and reaches the receiver."""
    from test_rootless_containers import Home

    home = Home(user)
    receiver = ConsoleReceiver(os.path.join(home.top, "console.sock"))
    os.chmod(receiver.path, 0o777)  # the user's runtime connects to it
    try:
        cid, bundle = home.bundle(["/bin/sh", "-c", "tty; stty size; id -u"], edit=with_terminal)
        made = home.cli("run", "-d", "--console-socket", receiver.path, "--bundle", bundle, cid)
        assert made.returncode == 0, made.stderr
        assert read_until_hangup(receiver.receive()) == b"/dev/pts/0\r\n33 77\r\n0\r\n"
        assert home.cli("delete", "--force", cid).returncode == 0
        home.assert_nothing_left()
    finally:
        receiver.close()
        home.cleanup()
