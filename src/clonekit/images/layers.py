"""Layers applied onto a root filesystem, member by member, through fds.

Each member's parent directory is resolved with ``openat2(root, parent, RESOLVE_IN_ROOT)``: a
symlink on the way (a layer that made ``a -> /etc`` and then writes ``a/passwd``, or a later
layer that turned a directory into such a symlink) resolves *inside* the rootfs, as if the
rootfs were ``/``; ``..`` cannot climb out of it either.  The last component is never followed:
it is created with ``O_CREAT|O_EXCL|O_NOFOLLOW``, ``mkdirat``, ``symlinkat``, ``mknodat`` or
``linkat`` (no ``AT_SYMLINK_FOLLOW``) relative to that parent's fd, after whatever was there is
removed (overlay semantics: a later layer replaces an entry, and a directory only merges with a
directory).  Names with a ``..`` component are refused (no honest layer has one); absolute names
are taken relative to the rootfs (as tar does); hardlink targets resolve inside the rootfs.

Whiteouts (``.wh.NAME``) and opaque directories (``.wh..wh..opq``) remove what lower layers put
there, never what the same layer made (OCI image-spec, "Whiteouts").  Ownership, modes, xattrs
(pax ``SCHILY.xattr.*``, but not overlayfs's ``*.overlay.*``) and mtimes are applied as the
member says; a directory's mode and mtime wait until every layer is in (a directory of mode 0555
must still take the next layer's files, and each new entry would move the mtime).

Unprivileged (``rootless``), the files stay owned by the caller and the owners in the layer are
not recorded anywhere; devices are skipped (mknod needs CAP_MKNOD in the initial user
namespace), and only ``user.*`` xattrs are kept (the others need privilege).
"""

from __future__ import annotations

import errno
import os
import stat

from .. import _native
from .errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import tarfile
    from typing import IO

__all__ = ["Extraction", "member_path"]

RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_IN_ROOT = 0x10
RESOLVE_NO_MAGICLINKS = 0x02
_IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)
_XATTR = "SCHILY.xattr."
# overlayfs's own (trusted.*, user.* with userxattr): the storage's state, never an image's content;
# on this rootfs as an overlay's lower layer they would hide or redirect what the layers say
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
# deeper directories are refused: the copy, the cleanup (shutil.rmtree) and the opaque walk
# recurse once a level, and Python's stack stops near 1000; no real image goes near this
MAX_DEPTH = 512
MAX_MEMBERS = 1_000_000  # in one layer: what this layer made is remembered (for its whiteouts)


class Refused(Exception):
    """A member the extraction rules refuse; becomes an ImageError naming layer and member."""


def member_path(name: str) -> str:
    """A member's path relative to the rootfs ("" for the rootfs itself): empty and ``.``
    components dropped (so ``/etc`` is ``etc``); a ``..`` component is refused."""
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise Refused(f"the path {name!r} has a '..' component; a layer's paths stay inside "
                          "the image, so this layer is refused")
        parts.append(part)
    return "/".join(parts)


def _openat2(dirfd: int, rel: str, flags: int, resolve: int = _IN_ROOT) -> int:
    for _ in range(8):  # EAGAIN: a rename raced with a ".." walk (nothing else renames here)
        try:
            return int(_native.openat2(dirfd, rel or ".", flags | os.O_CLOEXEC, 0, resolve))
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
    return int(_native.openat2(dirfd, rel or ".", flags | os.O_CLOEXEC, 0, resolve))


def _split(path: str) -> tuple[str, str]:
    parent, _, base = path.rpartition("/")
    return parent, base


class Extraction:
    """One unpack: layers applied in order onto the directory ``root`` (opened here), then
    :meth:`finish` sets the directories' modes and mtimes.  ``skipped`` counts what could not
    be carried (devices, xattrs) by kind."""

    def __init__(self, root: str, *, rootless: bool):
        self.root = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.top = os.readlink(f"/proc/self/fd/{self.root}")  # the kernel's name of the rootfs
        self.rootless = rootless
        self.dirs: dict[str, tuple[int, int | None]] = {}  # path -> (mode, mtime ns), set at the end
        self.skipped: dict[str, int] = {}
        self._created: set[str] = set()  # this layer's paths and their parents

    def close(self) -> None:
        if self.root >= 0:
            os.close(self.root)
            self.root = -1

    # --- one layer ------------------------------------------------------------------------------

    def apply(self, tar: tarfile.TarFile, layer: str) -> None:
        """Apply the members of ``tar`` (a stream, read once); ``layer`` names it in errors."""
        self._created = {""}
        count = 0
        while (member := tar.next()) is not None:
            # tarfile keeps every member read (~450 bytes each); a stream read once needs none back
            tar.members.clear()  # type: ignore[attr-defined]
            count += 1
            if count > MAX_MEMBERS:
                raise ImageError(f"{layer}: more than {MAX_MEMBERS} members; no image's layer has so "
                                 "many, and each costs memory and an inode: refused")
            try:
                self._member(tar, member)
            except Refused as why:
                raise ImageError(f"{layer}: member {member.name!r} refused: {why}") from None
            except (ValueError, OverflowError) as exc:  # os.* on a name or number it cannot take
                raise ImageError(f"{layer}: member {member.name!r} refused: {exc}: a NUL byte in a "
                                 "name, or a number (owner, time, device) out of range; no honest "
                                 "layer has one") from None
            except OSError as exc:
                if exc.errno is None:
                    raise  # not the kernel's: a damaged gzip stream (BadGzipFile), said by the caller
                raise ImageError(f"{layer}: member {member.name!r}: {exc.strerror or exc}",
                                 err=exc.errno) from None

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = member_path(member.name)
        parent, base = _split(path)
        if base.startswith(_WHITEOUT):
            self._whiteout(parent, base)
            return
        if not path:
            if not member.isdir():
                raise Refused("the rootfs itself can only be a directory")
            self._chown(self.root, "", member)  # "": the directory of the fd itself
            self.dirs[""] = (member.mode & 0o7777, _ns(member))
            return
        self._mark(path)
        pfd = self._parent(parent)
        try:
            if member.isdir():
                self._dir(pfd, base, member)
            elif member.isreg():
                self._file(tar, pfd, base, member)
            elif member.issym():
                self._clear(pfd, base)
                os.symlink(member.linkname, base, dir_fd=pfd)
                self._chown(pfd, base, member)
                self._xattrs_at(pfd, base, member)
                os.utime(base, ns=(_ns(member),) * 2, dir_fd=pfd, follow_symlinks=False)
            elif member.islnk():
                self._hardlink(pfd, base, path, member)
            elif member.ischr() or member.isblk() or member.isfifo():
                self._special(pfd, base, member)
            else:
                raise Refused(f"tar member type {member.type!r} is not a file, directory, link, "
                              "device or fifo")
        finally:
            os.close(pfd)

    def _mark(self, path: str) -> None:
        """Record ``path`` and its parents as made by this layer (whiteouts spare them)."""
        while path not in self._created:
            self._created.add(path)
            path = path.rpartition("/")[0]

    def _parent(self, parent: str) -> int:
        """An O_PATH fd of the directory ``parent``, resolved inside the rootfs, created (with
        its missing parents) if absent."""
        try:
            return _openat2(self.root, parent, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            raise Refused(f"{parent} (or one of its parents) is not a directory in the layers "
                          "below, so nothing can be put in it") from None
        parts = parent.split("/")
        fd = os.dup(self.root)
        try:
            for i, name in enumerate(parts):
                prefix = "/".join(parts[: i + 1])
                try:
                    nfd = _openat2(self.root, prefix, os.O_PATH | os.O_DIRECTORY)
                except FileNotFoundError:
                    real = self._deep_enough(self._real(fd, name))
                    try:
                        os.mkdir(name, 0o700, dir_fd=fd)
                    except FileExistsError:
                        raise Refused(f"{prefix} is a symlink whose target is missing; a directory "
                                      "cannot be made through it") from None
                    self.dirs.setdefault(real, (0o755, None))
                    nfd = _openat2(self.root, prefix, os.O_PATH | os.O_DIRECTORY)
                except NotADirectoryError:
                    raise Refused(f"{prefix} is not a directory in the layers below") from None
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _real(self, fd: int, base: str) -> str:
        """``base`` in the directory ``fd`` as a path from the rootfs with every symlink resolved:
        what a directory's deferred metadata is keyed by, so one reached through a symlinked
        parent (``lib -> usr/lib``) is found again by :meth:`finish`."""
        where = os.readlink(f"/proc/self/fd/{fd}")
        rel = where[len(self.top):].lstrip("/")
        return f"{rel}/{base}" if rel else base

    @staticmethod
    def _deep_enough(real: str) -> str:
        """The :meth:`_real` path of a directory about to be made, refused past MAX_DEPTH (the
        real path: symlinked parents make a shallow name deep)."""
        if real.count("/") >= MAX_DEPTH:
            raise Refused(f"the directory would be nested deeper than {MAX_DEPTH} levels; no image "
                          "needs that, and the tree could not be walked (copied, removed)")
        return real

    def _clear(self, pfd: int, base: str, *, keep_dir: bool = False) -> bool:
        """Remove the entry ``base`` of ``pfd`` (a directory with everything in it); with
        ``keep_dir`` a directory stays.  True when a directory was kept."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            self._rmtree(pfd, base)
        else:
            os.unlink(base, dir_fd=pfd)
        return False

    def _rmtree(self, pfd: int, base: str) -> None:
        import shutil

        path = self._real(pfd, base)
        shutil.rmtree(base, dir_fd=pfd)  # fd-based, never follows a symlink (3.11+)
        prefix = path + "/"
        for gone in [p for p in self.dirs if p == path or p.startswith(prefix)]:
            del self.dirs[gone]

    # --- entries --------------------------------------------------------------------------------

    def _dir(self, pfd: int, base: str, member: tarfile.TarInfo) -> None:
        real = self._real(pfd, base)
        if not self._clear(pfd, base, keep_dir=True):
            self._deep_enough(real)
            os.mkdir(base, 0o700, dir_fd=pfd)
        self.dirs[real] = (member.mode & 0o7777, _ns(member))
        self._chown(pfd, base, member)
        if _has_xattrs(member):
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                self._xattrs_fd(fd, member)
            finally:
                os.close(fd)

    def _file(self, tar: tarfile.TarFile, pfd: int, base: str, member: tarfile.TarInfo) -> None:
        self._clear(pfd, base)
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=pfd)
        try:
            data = tar.extractfile(member)
            if data is not None:
                _write_sparse(fd, data)
            if not self.rootless:
                os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode & 0o7777)  # after chown, which clears set-id bits
            self._xattrs_fd(fd, member)  # after chown, which drops security.capability
            os.utime(fd, ns=(_ns(member),) * 2)
        finally:
            os.close(fd)

    def _hardlink(self, pfd: int, base: str, path: str, member: tarfile.TarInfo) -> None:
        target = member_path(member.linkname)
        if target == path:
            return
        tparent, tbase = _split(target)
        if not tbase:
            raise Refused("a hardlink to the rootfs itself")
        try:
            tfd = _openat2(self.root, tparent, os.O_PATH | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            raise Refused(f"the hardlink target {target!r} is not in the image") from None
        try:
            try:
                st = os.stat(tbase, dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise Refused(f"the hardlink target {target!r} is not in the image") from None
            if stat.S_ISDIR(st.st_mode):
                raise Refused(f"the hardlink target {target!r} is a directory")
            self._clear(pfd, base)
            os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _special(self, pfd: int, base: str, member: tarfile.TarInfo) -> None:
        if member.isfifo():
            self._clear(pfd, base)
            os.mkfifo(base, 0o600, dir_fd=pfd)
        else:
            if self.rootless:
                self.skipped["device"] = self.skipped.get("device", 0) + 1
                return
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            self._clear(pfd, base)
            os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=pfd)
        self._chown(pfd, base, member)
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:  # chmod/xattrs through the fd's magic link: the inode just made, never opened
            where = f"/proc/self/fd/{fd}"
            os.chmod(where, member.mode & 0o7777)
            self._xattrs_at(pfd, base, member)
        finally:
            os.close(fd)
        os.utime(base, ns=(_ns(member),) * 2, dir_fd=pfd, follow_symlinks=False)

    def _whiteout(self, parent: str, base: str) -> None:
        if base == _OPAQUE:
            self._mark(parent)
            pfd = self._parent(parent)
            try:
                self._opaque(pfd, parent)
            finally:
                os.close(pfd)
            return
        if base.startswith(_WHITEOUT + _WHITEOUT[1:]):  # .wh..wh.* : aufs bookkeeping, no entry
            return
        name = base[len(_WHITEOUT):]
        if name in ("", ".", ".."):
            raise Refused(f"the whiteout {base!r} names no entry")
        path = f"{parent}/{name}" if parent else name
        if path in self._created:
            return  # a whiteout hides lower layers only
        try:
            pfd = _openat2(self.root, parent, os.O_PATH | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing below to hide
        try:
            self._clear(pfd, name)
        finally:
            os.close(pfd)

    def _opaque(self, pfd: int, path: str) -> None:
        """Remove what lower layers put under ``path``: everything this layer did not make."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        try:
            with os.scandir(fd) as entries:
                names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
            for name, is_dir in names:
                child = f"{path}/{name}" if path else name
                if child not in self._created:
                    self._clear(fd, name)
                elif is_dir:
                    sub = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                    try:
                        self._opaque(sub, child)
                    finally:
                        os.close(sub)
        finally:
            os.close(fd)

    # --- metadata -------------------------------------------------------------------------------

    def _chown(self, pfd: int, base: str, member: tarfile.TarInfo) -> None:
        if self.rootless:
            return
        if base:
            os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        else:
            os.chown(f"/proc/self/fd/{pfd}", member.uid, member.gid)

    def _xattrs(self, member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
        out = []
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR):
                continue
            name = key[len(_XATTR):]
            if name.startswith(_OVERLAY_XATTRS) or (self.rootless and not name.startswith("user.")):
                self.skipped["xattr"] = self.skipped.get("xattr", 0) + 1
                continue
            out.append((name, value.encode("utf-8", "surrogateescape")))
        return out

    def _set(self, target: int | str, name: str, value: bytes, *, follow: bool = True) -> None:
        try:
            os.setxattr(target, name, value, follow_symlinks=follow)
        except OSError as exc:
            # a filesystem without xattrs (ENOTSUP), or user.* on a symlink or device (EPERM):
            # counted, not fatal, as tar does
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
            self.skipped["xattr"] = self.skipped.get("xattr", 0) + 1

    def _xattrs_fd(self, fd: int, member: tarfile.TarInfo) -> None:
        for name, value in self._xattrs(member):
            self._set(fd, name, value)

    def _xattrs_at(self, pfd: int, base: str, member: tarfile.TarInfo) -> None:
        # lsetxattr through the parent's magic link: the parent fd is the resolved directory, the
        # last component is not followed
        for name, value in self._xattrs(member):
            self._set(f"/proc/self/fd/{pfd}/{base}", name, value, follow=False)

    # --- the end ----------------------------------------------------------------------------------

    def finish(self) -> None:
        """Set the directories' modes and mtimes, deepest first (a parent's mtime is not moved by
        its children's metadata, and a 0555 parent is set after its children)."""
        for path in sorted(self.dirs, key=lambda p: (-p.count("/"), p)):
            mode, mtime = self.dirs[path]
            try:
                fd = _openat2(self.root, path, os.O_RDONLY | os.O_DIRECTORY,
                              _IN_ROOT | RESOLVE_NO_SYMLINKS)
            except OSError:
                continue  # replaced by a symlink or a file in a later layer: not a directory now
            try:
                os.fchmod(fd, mode)
                if mtime is not None:
                    os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
        self.dirs.clear()


def _write_sparse(fd: int, data: IO[bytes]) -> None:
    """Write ``data`` to ``fd``, a chunk of zeros as a hole: a sparse member (a few blocks that
    say a terabyte) or a gzip bomb of zeros takes no disk; the file reads the same."""
    size, hole = 0, False
    while chunk := data.read(_CHUNK):
        size += len(chunk)
        if chunk == (_ZEROS if len(chunk) == _CHUNK else bytes(len(chunk))):
            os.lseek(fd, len(chunk), os.SEEK_CUR)
            hole = True
            continue
        hole = False
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
    if hole:
        os.ftruncate(fd, size)  # a hole at the end is the file's length only


def _ns(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000)


def _has_xattrs(member: tarfile.TarInfo) -> bool:
    return any(key.startswith(_XATTR) for key in member.pax_headers)
