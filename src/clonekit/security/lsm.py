"""Linux security modules: an AppArmor profile or an SELinux label for the container's program.

Both take effect at execve (written to /proc/self/attr/.../exec).  Asked for on a kernel where the
module is not enabled, they are an error: a profile that silently does not apply is a container
that is less confined than its user believes."""

from __future__ import annotations

import os

__all__ = ["apparmor_enabled", "apply_apparmor", "apply_selinux", "selinux_enabled"]


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled", "rb") as f:
            return f.read().startswith(b"Y") and os.path.isdir("/sys/kernel/security/apparmor")
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def apply_apparmor(profile: str) -> None:
    """Switch to ``profile`` at the next execve."""
    _write_attr(("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"), f"exec {profile}",
                f"apparmorProfile {profile!r}")


def apply_selinux(label: str) -> None:
    _write_attr(("/proc/self/attr/selinux/exec", "/proc/self/attr/exec"), label, f"selinuxLabel {label!r}")


def _write_attr(paths: tuple[str, ...], value: str, what: str) -> None:
    for path in paths:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OSError(exc.errno, f"{what}: cannot open {path}: {exc.strerror}") from None
        try:
            os.write(fd, value.encode())
            return
        except OSError as exc:
            raise OSError(exc.errno, f"{what}: the kernel refused it ({exc.strerror}): is the profile "
                                     "loaded (aa-status / seinfo)?") from None
        finally:
            os.close(fd)
    raise OSError(2, f"{what}: no /proc/self/attr exec file: the security module is not enabled")
