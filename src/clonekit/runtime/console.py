"""The container's terminal (``process.terminal``), done as runc does it.

Inside the container (the init, or an ``exec``'d process once it has joined the namespaces):

- :func:`setup` is runc's ``setupConsole`` + ``Setctty`` in one call: a new pty from the
  container's own devpts instance (its ``/dev/ptmx``), ``consoleSize`` applied, the slave bound
  onto ``/dev/console`` (the init only), the master sent to the runtime's socket, the slave made
  the controlling terminal and fds 0, 1 and 2.  ``exec -t`` calls
  ``setup(sock_fd, size=..., uid=...)`` with no ``root`` (runc's exec binds no /dev/console).
- the pieces, for other callers: :func:`open_pty` -> (master, slave), :func:`set_size`,
  :func:`send_master`, :func:`attach`.

On the runtime's side (the caller of ``create``/``run``/``exec``):

- :func:`connect` opens ``--console-socket PATH`` (a connected fd to hand to the container);
  :func:`socketpair` is the pair a foreground ``run`` uses instead, and :func:`receive_master`
  takes the master from its end.
- :class:`Foreground` is a foreground ``run`` with a terminal: the caller's terminal in raw mode,
  its window size copied (and again on SIGWINCH), bytes both ways until the container ends
  (``.run(task)`` -> wait status), the terminal restored (``.close()``).  ``exec -t`` in the
  foreground uses it the same way.

The message on the console socket is runc's (libcontainer/utils.SendFile): the name of the
master's file, ``/dev/ptmx``, as the data, and exactly one fd as SCM_RIGHTS -- what conmon and
containerd's shim read.

This module is imported only on the terminal path (it brings ``socket`` and ``fcntl``), and by
the runtime *before* the init is cloned: after pivot_root the init could not import it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import struct

from ..errors import KernelError, UsageError, from_errno

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..rootfs.paths import Root
    from ..task import Task

__all__ = ["Foreground", "attach", "connect", "open_pty", "receive_master", "send_master", "set_size",
           "setup", "socketpair"]

MASTER_NAME = b"/dev/ptmx"   # what runc sends along with the fd (the master's os.File name)
TIOCSCTTY = 0x540E
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414
TIOCSPTLCK = 0x40045431      # _IOW('T', 0x31, int): unlockpt
TIOCGPTPEER = 0x5441         # _IO('T', 0x41): the slave's fd from the master, no path lookup
_PTMX = os.makedev(5, 2)


# -- inside the container ----------------------------------------------------------------------
def setup(sock_fd: int, *, root: Root | None = None, size: tuple[int, int] | None = None,
          uid: int | None = None) -> None:
    """Give the calling process (a session leader without a terminal) a new pty of the container.

    ``root``: the rootfs before pivot_root (the init): /dev/ptmx is resolved inside it and the
    slave is bound onto /dev/console.  Without it, /dev/ptmx is the caller's own (``exec``,
    after joining the mount namespace).  ``size``: (height, width) from process.consoleSize.
    ``uid``: the process's user, who gets the slave (runc's fixStdioPermissions).  The master
    goes to ``sock_fd`` and is closed here, as is ``sock_fd``."""
    master, slave = open_pty(root)
    try:
        if size is not None and size[0] and size[1]:  # runc applies it only when both are set
            set_size(master, *size)
        if root is not None:
            from ..rootfs.devices import bind_console

            bind_console(root, slave)
        send_master(sock_fd, master)
    finally:
        os.close(master)
        os.close(sock_fd)
    attach(slave, uid)


def open_pty(root: Root | None = None) -> tuple[int, int]:
    """(master, slave) of a new pty of the devpts instance behind /dev/ptmx (in ``root``, or
    the caller's /): the slave belongs to the container's devpts, so it is /dev/pts/N there."""
    step = "open the container's /dev/ptmx"
    try:
        if root is not None:
            from ..rootfs.paths import open_in_root

            opath = open_in_root(root, "/dev/ptmx", step=step)
            try:
                master = os.open(f"/proc/self/fd/{opath}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            finally:
                os.close(opath)
        else:
            master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, KernelError):
            raise
        raise from_errno(exc.errno or errno.EIO, step, "process.terminal needs a devpts mount at "
                         "/dev/pts (newinstance, ptmxmode=0666) and /dev/ptmx", "/dev/ptmx") from None
    try:
        st = os.fstat(master)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != _PTMX:
            raise from_errno(errno.ENOTTY, step, "it is not the pty multiplexer (char 5:2)", "/dev/ptmx")
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(master)
        if isinstance(exc, KernelError):
            raise
        raise from_errno(exc.errno or errno.EIO, "open the pty's slave (TIOCGPTPEER)") from None
    return master, slave


def set_size(fd: int, height: int, width: int) -> None:
    """TIOCSWINSZ on either end of a pty."""
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def get_size(fd: int) -> tuple[int, int]:
    height, width, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, TIOCGWINSZ, b"\0" * 8))
    return height, width


def send_master(sock_fd: int, master: int) -> None:
    """runc's utils.SendFile: the name ``/dev/ptmx`` with one fd (SCM_RIGHTS)."""
    sock = socket.socket(fileno=sock_fd)
    try:
        sock.sendmsg([MASTER_NAME], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", master))])
    except OSError as exc:
        raise from_errno(exc.errno or errno.EIO, "send the pty master to the console socket",
                         "is the receiver still listening?") from None
    finally:
        sock.detach()


def attach(slave: int, uid: int | None = None) -> None:
    """The slave becomes stdin, stdout, stderr and the controlling terminal of the caller (who
    must lead a session without one: the init and exec call setsid first)."""
    if uid:  # runc's fixStdioPermissions: the user can then reopen it (/dev/tty, /proc/self/fd)
        try:
            os.fchown(slave, uid, -1)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM):  # unmapped in a user namespace: as runc
                raise
    for fd in (0, 1, 2):
        os.dup2(slave, fd)  # inheritable, unlike the slave's own O_CLOEXEC fd
    if slave > 2:
        os.close(slave)
    try:
        fcntl.ioctl(0, TIOCSCTTY, 0)
    except OSError as exc:
        raise from_errno(exc.errno or errno.EIO,
                         "make the pty the controlling terminal (TIOCSCTTY)") from None


# -- the runtime's side -----------------------------------------------------------------------
def connect(path: str) -> int:
    """A connected fd of the AF_UNIX socket ``--console-socket`` names (the caller closes it)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        hint = ("is the receiver (conmon, the shim, your program) listening there?"
                if exc.errno in (errno.ENOENT, errno.ECONNREFUSED) else "")
        if exc.errno == errno.EINVAL or len(os.fsencode(path)) > 107:
            hint = "a unix socket path has at most 107 bytes; use a shorter --console-socket"
        raise from_errno(exc.errno or errno.EIO, f"connect to --console-socket {path}", hint) from None
    return sock.detach()


def socketpair() -> tuple[int, int]:
    """(ours, the container's): the console socket of a foreground ``run``."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    return a.detach(), b.detach()


def receive_master(sock_fd: int) -> int:
    """The pty master the container sent on ``sock_fd`` (runc's utils.RecvFd)."""
    sock = socket.socket(fileno=sock_fd)
    try:
        _, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(4), socket.MSG_CMSG_CLOEXEC)
    finally:
        sock.detach()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS and len(data) >= 4:
            return int(struct.unpack("i", data[:4])[0])
    raise KernelError(errno.EBADMSG, "the container sent no pty master", step="receive the console")


def host_terminal() -> int:
    """The caller's terminal, as runc finds it: stderr, stdout or stdin, else /dev/tty
    (returned as a new fd the caller closes)."""
    for fd in (2, 1, 0):
        if os.isatty(fd):
            return os.dup(fd)
    try:
        return os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        raise UsageError("process.terminal is true, but clonekit has no terminal to connect it to "
                         "(stdin, stdout and stderr are not terminals and there is no /dev/tty): "
                         "run it from a terminal, pass --console-socket with --detach, or set "
                         "process.terminal to false") from None


class Foreground:
    """A foreground ``run`` with a terminal (runc's tty.go): the caller's terminal ``host``
    connected to the container's pty ``master``.  Both fds become this object's.

    Made as soon as the master arrives, before ``start``, as runc does: the container's pty
    stops turning "\\n" into "\\r\\n" (the caller's terminal does that) and the caller's
    terminal goes raw except for output processing (containerd/console's SetRaw).  :meth:`run`
    copies bytes both ways and the window size (now and on every SIGWINCH) until the container
    ends; :meth:`close` restores the caller's terminal, however this ends.  Other signals are
    the caller's to forward (oci.run_run does)."""

    def __init__(self, master: int, host: int, *, pid_namespace: bool = True) -> None:
        self.master, self.host, self.pid_namespace = master, host, pid_namespace
        self.saved: list[Any] | None = None
        try:
            _clear_onlcr(master)
            _copy_size(host, master)  # before start (runc copies it after: a race with the program)
            self.saved = _make_raw(host)
        except BaseException:
            self.close()
            raise

    def run(self, task: Task) -> int:
        """Proxy until the init (``task``) has ended and its pty is drained; its wait status."""
        import _signal  # `signal` would import enum
        import select

        master, host = self.master, self.host
        wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_fd = _signal.set_wakeup_fd(wakeup_w)
        old_winch = _signal.signal(_signal.SIGWINCH, lambda *_: None)  # the wake-up fd says it
        try:
            stdin = 0 if _open_fd(0) else -1
            poller = select.poll()
            for fd in (master, wakeup_r, task.fileno(), *((stdin,) if stdin >= 0 else ())):
                poller.register(fd, select.POLLIN)
            code: int | None = None
            while True:
                # once the init has ended: drain until the pty hangs up (every process of its
                # PID namespace is gone), or, without one, what is there now
                events = poller.poll(-1 if code is None else (100 if self.pid_namespace else 0))
                if not events and code is not None:
                    return code
                for fd, _ev in events:
                    if fd == master:
                        if not _pump(master, 1):
                            return code if code is not None else task.wait()
                    elif fd == stdin:
                        if not _pump(stdin, master):
                            poller.unregister(stdin)  # EOF: the container keeps its terminal
                    elif fd == wakeup_r:
                        os.read(wakeup_r, 64)
                        _copy_size(host, master)
                    elif code is None:  # the pidfd is readable: the init has ended
                        code = task.wait()
                        poller.unregister(task.fileno())
        finally:
            _signal.signal(_signal.SIGWINCH, old_winch)
            _signal.set_wakeup_fd(old_fd)
            os.close(wakeup_r)
            os.close(wakeup_w)

    def close(self) -> None:
        import termios

        if self.saved is not None:
            try:
                termios.tcsetattr(self.host, termios.TCSADRAIN, self.saved)
            except termios.error:
                pass  # the terminal is gone
            self.saved = None
        for fd in (self.master, self.host):
            if fd >= 0:
                os.close(fd)
        self.master = self.host = -1


def _open_fd(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _pump(src: int, dst: int) -> bool:
    """Copy what ``src`` has now to ``dst``; False at its end (EOF, or EIO: the pty's slave side
    has no process left)."""
    try:
        data = os.read(src, 65536)
    except OSError as exc:
        if exc.errno == errno.EIO:
            return False
        raise
    if not data:
        return False
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(dst, view):]
        except BlockingIOError:
            import select

            select.select([], [dst], [])
    return True


def _copy_size(host: int, master: int) -> None:
    try:
        height, width = get_size(host)
        if height and width:  # 0x0 is "unknown" (e.g. under `script` without a terminal):
            set_size(master, height, width)  # keep consoleSize then (runc would copy 0x0)
    except OSError:
        pass  # the caller's terminal went away: the container keeps its size (as runc)


def _clear_onlcr(fd: int) -> None:
    import termios

    attrs = termios.tcgetattr(fd)
    attrs[1] &= ~termios.ONLCR
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _make_raw(fd: int) -> list[Any] | None:
    """cfmakeraw, but output processing stays on (as containerd/console's SetRaw, which runc
    uses): the container's "\\n" still reaches the screen as "\\r\\n"."""
    import termios

    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        return None
    raw = list(saved)
    raw[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
                | termios.IGNCR | termios.ICRNL | termios.IXON)
    raw[1] |= termios.OPOST
    raw[2] = (raw[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    raw[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cc = list(saved[6])
    cc[termios.VMIN], cc[termios.VTIME] = 1, 0
    raw[6] = cc
    termios.tcsetattr(fd, termios.TCSANOW, raw)
    return saved
