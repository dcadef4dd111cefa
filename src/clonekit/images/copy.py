"""A rootfs copied for a bundle (or a container without overlayfs): every file a new inode
(nothing shared with the cache, so writes in the copy never reach it), hardlinks inside the
tree kept as hardlinks of the copy, owners (as root), modes, xattrs, mtimes, symlinks, devices
(as root) and fifos kept.  The walk goes through fds and never follows a symlink."""

from __future__ import annotations

import errno
import os
import stat

from .errors import ImageError

__all__ = ["copy_tree"]


def copy_tree(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy the directory ``src`` to ``dst``, which must not exist."""
    source, target = os.fspath(src), os.fspath(dst)
    try:
        os.mkdir(target, 0o700)
    except OSError as exc:
        raise ImageError(f"cannot make {target}: {exc.strerror}", err=exc.errno, filename=target) from None
    from .cache import unprivileged

    copier = _Copier(not unprivileged())
    sfd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    dfd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    copier.top = dfd
    try:
        copier.directory(sfd, dfd, "")
        copier.meta(sfd, dfd, os.fstat(sfd))
    except OSError as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"copying {source} to {target}: {exc.strerror or exc}"
                         + (f" ({exc.filename})" if exc.filename else ""), err=exc.errno,
                         filename=target) from None
    finally:
        os.close(sfd)
        os.close(dfd)


class _Copier:
    def __init__(self, privileged: bool):
        self.privileged = privileged
        self.links: dict[tuple[int, int], str] = {}  # (dev, ino) of a multi-linked file -> its copy
        self.top = -1

    def directory(self, sfd: int, dfd: int, rel: str) -> None:
        with os.scandir(sfd) as entries:
            names = [e.name for e in entries]
        for name in names:
            st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
            path = f"{rel}/{name}" if rel else name
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(name, 0o700, dir_fd=dfd)
                s = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
                d = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    self.directory(s, d, path)
                    self.meta(s, d, st)  # after its entries: they would move its mtime
                finally:
                    os.close(s)
                    os.close(d)
            elif stat.S_ISREG(mode):
                self.file(sfd, dfd, name, path, st)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
                self.meta_at(dfd, name, st)
            elif stat.S_ISFIFO(mode) or (self.privileged and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode))):
                if stat.S_ISFIFO(mode):
                    os.mkfifo(name, 0o600, dir_fd=dfd)
                else:
                    os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dfd)
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(mode))
                finally:
                    os.close(fd)
                self.meta_at(dfd, name, st)
            # sockets (and devices when unprivileged) are not carried

    def file(self, sfd: int, dfd: int, name: str, path: str, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                os.link(first, name, src_dir_fd=self.top, dst_dir_fd=dfd, follow_symlinks=False)
                return
            self.links[(st.st_dev, st.st_ino)] = path
        s = self._open_source(sfd, name, st)
        try:
            d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                        dir_fd=dfd)
            try:
                _copy_data(s, d, st.st_size)
                self.meta(s, d, st)
            finally:
                os.close(d)
        finally:
            os.close(s)

    def _open_source(self, sfd: int, name: str, st: os.stat_result) -> int:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags, dir_fd=sfd)
        except PermissionError:
            if self.privileged or st.st_uid != os.geteuid():
                raise
        # unprivileged, our own file without read permission (an image's 0000 /etc/shadow):
        # readable for the moment of the copy, its mode put back
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
        where = f"/proc/self/fd/{fd}"
        try:
            os.chmod(where, stat.S_IMODE(st.st_mode) | 0o400)
            try:  # the magic link itself is a symlink: no O_NOFOLLOW (it names this inode)
                return os.open(where, os.O_RDONLY | os.O_CLOEXEC)
            finally:
                os.chmod(where, stat.S_IMODE(st.st_mode))
        finally:
            os.close(fd)

    def meta(self, sfd: int, dfd: int, st: os.stat_result) -> None:
        if self.privileged:
            os.fchown(dfd, st.st_uid, st.st_gid)
        os.fchmod(dfd, stat.S_IMODE(st.st_mode))
        try:
            names = os.listxattr(sfd)
        except OSError:
            names = []
        for attr in names:
            try:
                os.setxattr(dfd, attr, os.getxattr(sfd, attr))
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
        os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))

    def meta_at(self, dfd: int, name: str, st: os.stat_result) -> None:
        if self.privileged:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)


def _copy_data(s: int, d: int, size: int) -> None:
    """The data regions of ``s`` (SEEK_DATA/SEEK_HOLE: a sparse file stays sparse, its holes are
    not written out as zeros) copied by copy_file_range (in the kernel; a reflink where the
    filesystem can), else read/write."""
    in_kernel = True
    offset = 0
    while offset < size:
        try:
            start = os.lseek(s, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            break  # a hole to the end
        end = min(os.lseek(s, start, os.SEEK_HOLE), size)
        while start < end:
            n = 0
            if in_kernel:
                try:
                    n = os.copy_file_range(s, d, min(end - start, 1 << 30), start, start)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    in_kernel = False
            if not n:
                chunk = os.pread(s, min(end - start, 1 << 20), start)
                if not chunk:
                    break  # the file shrank
                n = os.pwrite(d, chunk, start)
            start += n
        offset = end
    os.ftruncate(d, size)  # the length, with a hole at the end
