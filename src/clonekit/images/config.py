"""The image's configuration (the OCI image config's ``config`` object) as the process to run."""

from __future__ import annotations

from .._record import record
from .errors import ImageError

__all__ = ["ImageConfig", "parse_config"]


@record(frozen=True)
class ImageConfig:
    """What the image says to run: ``entrypoint + cmd`` is the argv (either may be empty),
    ``env`` is ``NAME=value`` strings, ``working_dir`` the cwd ("" means /), ``user`` as the
    image writes it ("", "name", "uid", "name:group", "uid:gid")."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""

    @property
    def argv(self) -> tuple[str, ...]:
        return self.entrypoint + self.cmd


def _strings(value: object, field: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # some tools write a bare string; Docker treats it as one word
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImageError(f"{where}: config.{field} must be a list of strings, not {value!r}")
    for item in value:
        _no_nul(item, field, where)
    return tuple(value)


def _no_nul(value: str, field: str, where: str) -> None:
    # execve and chdir take C strings: "/bin/sh\0anything" would run /bin/sh, not what was shown
    if "\0" in value:
        raise ImageError(f"{where}: config.{field} has a NUL character in {value!r}; the kernel's "
                         "strings end at one, so it cannot be passed as written")


def _string(value: object, field: str, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImageError(f"{where}: config.{field} must be a string, not {value!r}")
    _no_nul(value, field, where)
    return value


def parse_config(doc: object, where: str) -> ImageConfig:
    """The ImageConfig of an image config document (the parsed JSON); ``where`` names it in
    errors.  Docker's archives spell the object ``config`` too (``container_config`` is the
    build container's and is ignored)."""
    if not isinstance(doc, dict):
        raise ImageError(f"{where}: the image config is not a JSON object")
    conf = doc.get("config") or {}
    if not isinstance(conf, dict):
        raise ImageError(f"{where}: config must be a JSON object, not {conf!r}")
    return ImageConfig(
        entrypoint=_strings(conf.get("Entrypoint"), "Entrypoint", where),
        cmd=_strings(conf.get("Cmd"), "Cmd", where),
        env=_strings(conf.get("Env"), "Env", where),
        working_dir=_string(conf.get("WorkingDir"), "WorkingDir", where),
        user=_string(conf.get("User"), "User", where),
    )
