"""The cache of extracted images: ``<cache>/sha256-<hex>[-rootless]/{rootfs,config.json}``,
keyed by the config digest (the image id: it names the config, which names every layer's
diff_id), so the same image from a docker-archive, an oci-archive or a layout is one entry.

An entry is complete or absent: it is built in ``.tmp-<key>-*`` and renamed into place, so a
killed extraction leaves only a temp directory, which the next unpack of that image removes.
One unpack per key at a time (``flock`` on ``.lock-<key>``, released by the kernel when its
holder dies): a second caller waits, then finds the entry made.
"""

from __future__ import annotations

import errno
import os

from .errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

__all__ = ["default_cache_dir", "entry_key", "locked", "new_temp", "present", "remove_tree",
           "unprivileged"]


def unprivileged() -> bool:
    """Extract as the unprivileged do (files the caller's, no devices): not root, or root of a
    user namespace other than the initial one (rootless podman, ``unshare -r``), where the
    layer's owners may be unmapped and mknod is refused."""
    if os.geteuid() != 0:
        return True
    from ..ns.userns import in_user_namespace

    return in_user_namespace()


def default_cache_dir() -> str:
    """/var/cache/clonekit/images for root (of the initial user namespace), else the user's
    cache directory (XDG)."""
    if not unprivileged():
        return "/var/cache/clonekit/images"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "clonekit", "images")


def entry_key(digest: str, *, rootless: bool) -> str:
    """The entry's name: an unprivileged extraction differs (owners, devices), so it has its own."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}" + ("-rootless" if rootless else "")


def prepare(cache_dir: str) -> None:
    """Make the cache directory (0700) and check nobody else may change it: a rootfs taken from
    it becomes a container's root."""
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        st = os.stat(cache_dir, follow_symlinks=False)
    except OSError as exc:
        raise ImageError(f"cannot make the image cache {cache_dir}: {exc.strerror}; give another "
                         "cache_dir (--cache-dir)", err=exc.errno, filename=cache_dir) from None
    import stat

    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ImageError(f"the image cache {cache_dir} is not a directory of this user's alone "
                         "(owner or group/other write): a rootfs from it could be changed by "
                         "someone else; give another cache_dir", err=errno.EPERM, filename=cache_dir)
    for path in {os.path.abspath(cache_dir), os.path.realpath(cache_dir)}:  # a symlink's directory too
        _check_parents(path)


def _check_parents(cache_dir: str) -> None:
    """Refuse a cache below a directory another user owns or may write (not sticky, as /tmp
    is): they could rename the cache away (or a symlink to it) and put their own, rootfs and
    all, in its place."""
    import stat

    trusted = {0, os.geteuid()}
    if unprivileged() and os.geteuid() == 0:  # a user namespace: unmapped owners (host root) show so
        trusted.add(_overflow_uid())
    parent = os.path.dirname(cache_dir)
    while True:
        st = os.stat(parent)
        # group write of one's own group is trusted: umask 002 with user private groups
        others_write = st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != os.getegid())
        if st.st_uid not in trusted or (others_write and not st.st_mode & stat.S_ISVTX):
            raise ImageError(f"the image cache {cache_dir} is below {parent}, which may be changed by "
                             f"other users (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}): "
                             "they could put another cache in its place; give a cache_dir below "
                             "directories of root's or this user's only", err=errno.EPERM,
                             filename=cache_dir)
        if parent == "/":
            return
        parent = os.path.dirname(parent)


def _overflow_uid() -> int:
    try:
        with open("/proc/sys/kernel/overflowuid") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65534


def present(entry: str) -> bool:
    """Whether the cache entry ``entry`` exists: a directory of this user's (not a symlink to
    one, or another's: only what this user extracted becomes a rootfs)."""
    import stat

    try:
        st = os.lstat(entry)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise ImageError(f"the image cache entry {entry} is not a directory of this user's (a "
                         "symlink, a file or another owner's): it was not made by an unpack; "
                         "remove it", err=errno.EPERM, filename=entry)
    return True


class locked:
    """``with locked(cache_dir, key):`` holds the key's lock."""

    def __init__(self, cache_dir: str, key: str):
        self.path = os.path.join(cache_dir, f".lock-{key}")
        self.fd = -1

    def __enter__(self) -> locked:
        import fcntl

        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            if self.fd >= 0:
                os.close(self.fd)
            raise ImageError(f"cannot lock {self.path}: {exc.strerror}", err=exc.errno,
                             filename=self.path) from None
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the flock
        self.fd = -1


def stale_temps(cache_dir: str, key: str) -> Iterator[str]:
    prefix = f".tmp-{key}-"
    with os.scandir(cache_dir) as entries:
        found = [e.path for e in entries if e.name.startswith(prefix)]
    yield from found


def new_temp(cache_dir: str, key: str) -> str:
    """A fresh temp directory for the key (call with the lock held: any older one is a killed
    extraction's, removed here)."""
    import tempfile

    for path in stale_temps(cache_dir, key):
        remove_tree(path)
    return tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=cache_dir)


def remove_tree(path: str) -> None:
    """Remove a directory tree of ours; unprivileged, its read-only directories (an image's
    0555 ones) are made writable first, else their entries could not be unlinked."""
    import shutil

    if unprivileged():
        _writable(path)
    shutil.rmtree(path, ignore_errors=True)


def _writable(path: str) -> None:
    try:
        os.chmod(path, 0o700)  # a directory of ours (callers pass no symlinks)
        with os.scandir(path) as entries:
            dirs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for sub in dirs:
        _writable(sub)
