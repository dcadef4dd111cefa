"""Image to rootfs: clonekit.images.unpack against GNU tar and buildah on the same image.

The image: one gzip layer made from host directories (DIRS, default /usr/lib/python3.11,
/usr/share/doc and /usr/share/locale: ~10k entries, ~330 MB), as an OCI layout.
Measured, ROUNDS times each, medians:

- cold unpack: ``unpack(layout, cache_dir=<empty>)`` (digests checked, through fds);
- ``tar -xzf`` of the same blob (no digest, no whiteouts: the floor of any extractor);
- ``buildah from oci:<layout>`` into fresh vfs storage (a container tool's unpack, with its
  blob copy into storage), when buildah is installed;
- warm unpack (a cache hit) in this process and as a fresh ``python -c``;
- the bundle's rootfs copy (``copy_tree``) against ``cp -a``.

Run: .venv/bin/python benchmarks/images.py      (as root for buildah; ROUNDS=5)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ROUNDS = int(os.environ.get("ROUNDS", "5"))
DIRS = os.environ.get("DIRS", "usr/lib/python3.11 usr/share/doc usr/share/locale").split()


def make_layout(work: str) -> tuple[str, str]:
    tar = os.path.join(work, "layer.tar")
    subprocess.run(["tar", "-C", "/", "-cf", tar, *DIRS], check=True, stderr=subprocess.DEVNULL)
    with open(tar, "rb") as fh:
        raw = fh.read()
    packed = gzip.compress(raw, compresslevel=1, mtime=0)
    layout = os.path.join(work, "layout")
    os.makedirs(os.path.join(layout, "blobs", "sha256"))

    def blob(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as out:
            out.write(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}
    layer = blob(packed)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **blob(json.dumps(config).encode())},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}]}
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "annotations": {"org.opencontainers.image.ref.name": "bench"},
                                                **blob(json.dumps(manifest).encode())}]}
    with open(os.path.join(layout, "index.json"), "w") as out:
        json.dump(index, out)
    with open(os.path.join(layout, "oci-layout"), "w") as out:
        json.dump({"imageLayoutVersion": "1.0.0"}, out)
    os.unlink(tar)
    digest = str(layer["digest"])
    listing = subprocess.run(["tar", "-tzf", blob_path(layout, digest)], capture_output=True).stdout
    print(f"image: {len(raw) / 2**20:.0f} MiB tar, {len(packed) / 2**20:.0f} MiB gzip, "
          f"{listing.count(10)} entries")
    return layout, blob_path(layout, digest)


def blob_path(layout: str, digest: str) -> str:
    return os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])


def timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def unpack_into(layout: str, cache: str) -> object:
    from clonekit.images import unpack

    return unpack(layout, cache_dir=cache)


def command(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def buildah_from(buildah: str, store: str, layout: str) -> float:
    base = [buildah, "--root", f"{store}/root", "--runroot", f"{store}/run", "--storage-driver", "vfs"]
    took = timed(command, *base, "from", f"oci:{layout}")
    subprocess.run([*base, "rm", "--all"], capture_output=True)
    subprocess.run([*base, "rmi", "--all", "--force"], capture_output=True)
    shutil.rmtree(store, ignore_errors=True)
    return took


def main() -> None:
    from clonekit.images import copy_tree, unpack
    from clonekit.images.cache import remove_tree

    work = tempfile.mkdtemp(prefix="clonekit-bench-images-")
    try:
        layout, layer = make_layout(work)
        results: dict[str, list[float]] = {"clonekit unpack (cold)": [], "tar -xzf": []}
        buildah = shutil.which("buildah") if os.geteuid() == 0 else None
        for i in range(ROUNDS):
            cache = os.path.join(work, f"cache{i}")
            results["clonekit unpack (cold)"].append(timed(unpack_into, layout, cache))
            remove_tree(cache)
            out = os.path.join(work, f"tar{i}")
            os.mkdir(out)
            results["tar -xzf"].append(timed(command, "tar", "--same-owner", "-p", "--xattrs", "-xzf", layer,
                                             "-C", out))
            shutil.rmtree(out)
            if buildah:
                results.setdefault("buildah from (vfs)", []).append(
                    buildah_from(buildah, os.path.join(work, f"buildah{i}"), layout))
        cache = os.path.join(work, "cache")
        image = unpack(layout, cache_dir=cache)
        hits = [timed(unpack_into, layout, cache) for _ in range(50)]
        script = "import sys; from clonekit.images import unpack; unpack(sys.argv[1], cache_dir=sys.argv[2])"
        fresh = [timed(command, sys.executable, "-c", script, layout, cache) for _ in range(ROUNDS * 4)]
        python = [timed(command, sys.executable, "-c", "import pathlib") for _ in range(ROUNDS * 4)]
        copies, cps = [], []
        for i in range(ROUNDS):
            target = os.path.join(work, f"copy{i}")
            copies.append(timed(copy_tree, image.rootfs, target))
            shutil.rmtree(target)
            cps.append(timed(command, "cp", "-a", str(image.rootfs), target))
            shutil.rmtree(target)
        base = statistics.median(results["tar -xzf"])
        for name, samples in results.items():
            med = statistics.median(samples)
            print(f"{name:28s} {med * 1000:8.0f} ms   x{med / base:.2f} of tar")
        print(f"{'cache hit, in process':28s} {statistics.median(hits) * 1000:8.2f} ms")
        print(f"{'cache hit, fresh python':28s} {statistics.median(fresh) * 1000:8.1f} ms "
              f"(python -c 'import pathlib': {statistics.median(python) * 1000:.1f} ms)")
        ck, cp = statistics.median(copies), statistics.median(cps)
        print(f"{'copy_tree (bundle rootfs)':28s} {ck * 1000:8.0f} ms   x{ck / cp:.2f} of cp -a "
              f"({cp * 1000:.0f} ms)")
    finally:
        remove_tree(work)


if __name__ == "__main__":
    main()
