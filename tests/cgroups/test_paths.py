"""cgroupsPath -> the cgroup path clonekit uses (pure function: no cgroup is touched)."""

from __future__ import annotations

import pytest

from clonekit.cgroups import OWNED_PARENT, CgroupPathError, resolve
from clonekit.errors import UsageError


def test_absolute_path_is_kept_as_is() -> None:
    assert resolve("/clonekit-test-cg/abc", "id") == ("/clonekit-test-cg/abc", None)
    assert resolve("//a/./b/", "id") == ("/a/b", None)
    assert resolve("/machine/a:b", "id") == ("/machine/a:b", None), "colons are fine in a path"


def test_relative_path_stays_relative_for_the_runtimes_own_group() -> None:
    """As in runc, a relative path is joined to the runtime's own group (by Cgroup.create, per
    hierarchy); clonekit owns none of the parents, so it removes only what it made."""
    assert resolve("abc", "id") == ("abc", None)
    assert resolve("pod1/./abc/", "id") == ("pod1/abc", None)


def test_missing_path_uses_the_container_id_under_the_clonekit_owned_parent() -> None:
    assert OWNED_PARENT == "/clonekit"
    assert resolve(None, "web-1") == ("/clonekit/web-1", "/clonekit")
    assert resolve("", "web-1") == ("/clonekit/web-1", "/clonekit")


def test_systemd_form_is_a_clear_error() -> None:
    with pytest.raises(CgroupPathError) as info:
        resolve("system.slice:clonekit:abc", "id")
    text = str(info.value)
    assert "slice:prefix:name" in text and "systemd" in text and "/clonekit/NAME" in text
    assert isinstance(info.value, UsageError)
    with pytest.raises(CgroupPathError, match="systemd"):
        resolve(":clonekit:abc", "id")  # empty slice: systemd's default


@pytest.mark.parametrize("bad, words", [
    ("/a/../../etc", '".."'),
    ("../x", '".."'),
    ("/", "root cgroup"),
    ("/./", "root cgroup"),
    ("a\0b", "NUL"),
    ("/" + "x" * 256, "255 bytes"),
])
def test_bad_paths_are_refused(bad: str, words: str) -> None:
    with pytest.raises(CgroupPathError, match=words.replace(".", r"\.")):
        resolve(bad, "id")


def test_bad_container_id_is_refused() -> None:
    with pytest.raises(CgroupPathError, match="container id"):
        resolve(None, "../x")
