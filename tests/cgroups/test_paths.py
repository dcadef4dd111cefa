"""cgroupsPath -> the cgroup path clonekit uses (pure function: no cgroup is touched)."""

from __future__ import annotations

import pytest

from clonekit.cgroups import OWNED_PARENT, CgroupPathError, resolve
from clonekit.errors import UsageError


def test_absolute_path_is_kept_as_is() -> None:
    assert resolve("/clonekit-test-cg/abc", "id") == ("/clonekit-test-cg/abc", None)
    assert resolve("//a/./b/", "id") == ("/a/b", None)
    assert resolve("/machine/a:b", "id") == ("/machine/a:b", None), "colons are fine in a path"


def test_relative_path_goes_under_the_clonekit_owned_parent() -> None:
    """Unlike runc (which joins it to the caller's own group): /clonekit/<path>."""
    assert OWNED_PARENT == "/clonekit"
    assert resolve("abc", "id") == ("/clonekit/abc", "/clonekit")
    assert resolve("pod1/abc", "id") == ("/clonekit/pod1/abc", "/clonekit")


def test_missing_path_uses_the_container_id() -> None:
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
