"""``clonekit bundle IMAGE DIR``: a runtime bundle (config.json + rootfs) from an OCI image
layout directory or a docker-archive/oci-archive tar, for ``clonekit run -b DIR ID``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE",
                        help="an OCI image layout directory, or a `docker save`/`podman save` archive "
                             "(docker-archive or oci-archive)")
    parser.add_argument("bundle", metavar="DIR", help="the bundle directory to write (made if missing)")
    parser.add_argument("--ref", default=None,
                        help="which image, when the source holds several (a name or tag: busybox:latest)")
    parser.add_argument("--rootless", dest="bundle_rootless", action="store_true",
                        help="a config for an unprivileged user (as `clonekit spec --rootless`)")
    parser.add_argument("--cache-dir", default=None,
                        help="where extracted images are kept (default /var/cache/clonekit/images, "
                             "~/.cache/clonekit/images when not root)")


def run(args: argparse.Namespace) -> int:
    from clonekit.images.bundle import write_bundle

    write_bundle(args.image, args.bundle, ref=args.ref, rootless=args.bundle_rootless,
                 cache_dir=args.cache_dir)
    return 0
