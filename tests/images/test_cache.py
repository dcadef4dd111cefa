"""The cache of extracted images: a second unpack is a hit (the layers are not even read), an
extraction killed midway leaves no entry (and its temp directory goes with the next unpack),
a second caller of the same image waits on the first and takes its entry; the progress bar
is drawn on a terminal only.

The extraction is paused at a known point by serving the layer blob through a FIFO: the test
writes the first member and waits for the fact (the file in the temp rootfs), never a time."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from image_helpers import Layout, d, entry_dirs, f, layer_tar, oci_layout, temp_dirs

from clonekit.images import unpack
from waiting import wait_for

FIRST = b"first member\n" * 100
UNPACK = ("import sys; from clonekit.images import unpack; "
          "print(unpack(sys.argv[1], cache_dir=sys.argv[2]).rootfs, flush=True)")


def _layer_blob(layout: str) -> str:
    import json

    with open(os.path.join(layout, "index.json")) as index:
        manifest = json.load(index)["manifests"][0]["digest"]
    with open(Layout(layout).blob_path(manifest)) as m:
        return Layout(layout).blob_path(json.load(m)["layers"][0]["digest"])


def _child(source: str, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", UNPACK, source, str(cache)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


class PausedLayer:
    """A layout whose only layer blob is a FIFO: ``start`` feeds the first member and waits
    until the child wrote it to its temp rootfs; ``finish`` feeds the rest."""

    def __init__(self, tmp_path: Path, cache: Path):
        self.tar = layer_tar([d("data"), f("data/first", FIRST), f("data/second", b"2" * 300_000)])
        self.layout = oci_layout(str(tmp_path / "paused"), [[d("data"), f("data/first", FIRST),
                                                              f("data/second", b"2" * 300_000)]])
        self.blob = _layer_blob(self.layout)
        with open(self.blob, "rb") as fh:
            assert fh.read() == self.tar
        os.unlink(self.blob)
        os.mkfifo(self.blob)
        self.cache = cache
        self.fd = -1
        # the first file and 64 KiB of the second: tarfile reads its stream in 10 KiB records,
        # each read waits for a full one, so the first file is out once a few more are in
        self.split = self.tar.index(FIRST) + len(FIRST) + (64 << 10)

    def start(self, child: subprocess.Popen[str]) -> str:
        self.fd = os.open(self.blob, os.O_WRONLY)  # returns once the child opened it to read
        os.write(self.fd, self.tar[:self.split])

        def written() -> str | None:
            for temp in temp_dirs(str(self.cache)):
                path = self.cache / temp / "rootfs/data/first"
                if path.exists() and path.stat().st_size == len(FIRST):
                    return temp
            assert child.poll() is None, child.communicate()
            return None

        return wait_for(written, what="the first member in the temp rootfs")

    def finish(self) -> None:
        view = memoryview(self.tar)[self.split:]
        while view:
            view = view[os.write(self.fd, view):]
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def test_second_unpack_is_a_hit_without_reading_layers(tmp_path):
    cache = tmp_path / "cache"
    layout = oci_layout(str(tmp_path / "layout"), [[d("etc"), f("etc/x", b"x")]])
    first = unpack(layout, cache_dir=cache)
    before = os.stat(first.rootfs)
    os.unlink(_layer_blob(layout))  # a miss would have to read it
    again = unpack(layout, cache_dir=cache)
    assert again == first
    after = os.stat(again.rootfs)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_killed_extraction_leaves_no_entry(tmp_path):
    cache = tmp_path / "cache"
    paused = PausedLayer(tmp_path, cache)
    child = _child(paused.layout, cache)
    try:
        temp = paused.start(child)
        child.kill()  # our own child, by its Popen handle
        child.wait()
    finally:
        paused.close()
        if child.poll() is None:
            child.kill()
        child.communicate()
    assert entry_dirs(str(cache)) == [] and temp_dirs(str(cache)) == [temp]
    # the same image again (its blob a plain file now): the lock was released by the kernel, the
    # stale temp directory is removed, the entry is made
    os.unlink(paused.blob)
    with open(paused.blob, "wb") as fh:
        fh.write(paused.tar)
    image = unpack(paused.layout, cache_dir=cache)
    assert (image.rootfs / "data/second").stat().st_size == 300_000
    assert temp_dirs(str(cache)) == [] and len(entry_dirs(str(cache))) == 1


def _waits_on_flock(pid: int) -> bool:
    with open("/proc/locks") as locks:
        return any("->" in line and " FLOCK " in line and f" {pid} " in line for line in locks)


def test_concurrent_unpack_of_one_image_extracts_once(tmp_path):
    cache = tmp_path / "cache"
    paused = PausedLayer(tmp_path, cache)
    # the same image from a second source that lacks the layer blob: it can only succeed by
    # taking the entry the first caller makes
    second_source = str(tmp_path / "no-layers")
    shutil.copytree(paused.layout, second_source,
                    ignore=lambda top, names: [n for n in names if os.path.join(top, n) == paused.blob])
    first = _child(paused.layout, cache)
    second = None
    try:
        paused.start(first)
        second = _child(second_source, cache)
        wait_for(lambda: _waits_on_flock(second.pid) or second.poll() is not None,
                 what="the second unpack waiting on the image's lock")
        assert second.poll() is None, second.communicate()
        paused.finish()
        out1, err1 = first.communicate(timeout=60)
        out2, err2 = second.communicate(timeout=60)
    finally:
        paused.close()
        for child in (first, second):
            if child is not None and child.poll() is None:
                child.kill()
                child.communicate()
    assert first.returncode == 0 and second.returncode == 0, (err1, err2)
    assert out1 == out2 and len(entry_dirs(str(cache))) == 1
    assert Path(out1.strip(), "data/first").read_bytes() == FIRST


@pytest.fixture
def big_layout(tmp_path):
    """An image whose one layer blob is over the bar's threshold (33 MiB, uncompressed)."""
    return oci_layout(str(tmp_path / "big"), [[f("big", b"\0" * (33 << 20))]])


def test_progress_bar_on_a_terminal_only(tmp_path, big_layout):
    master, slave = pty.openpty()
    try:
        child = subprocess.Popen([sys.executable, "-c", UNPACK, big_layout, str(tmp_path / "c1")],
                                 stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        slave = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        child.communicate()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert child.returncode == 0
    text = drawn.decode()
    assert "layer 1/1 sha256:" in text and "100% 33.0/33.0 MiB" in text, text
    quiet = subprocess.run([sys.executable, "-c", UNPACK, big_layout, str(tmp_path / "c2")],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert quiet.returncode == 0 and quiet.stderr == ""
