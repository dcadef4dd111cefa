"""Fuzz config.json: mutated documents through the spec parser in-process, a sample through the CLI.

    .venv/bin/python benchmarks/fuzz_config.py [--cases 10000] [--seed N] [--cli-every 100]

The documents start from `clonekit spec`'s default config and the test suite's base_config
(tests/runtime/conftest.py), then take 1-4 mutations each: types changed, fields added and
removed, huge and negative numbers, a lone surrogate ("\\ud800") in a string, deep nesting, wrong
enum values, capabilities/rlimits/seccomp/devices sections with random content.

Checked for each document:
- in-process, ``plan_from_dict(doc, bundle)`` returns a Plan or raises a ``clonekit.errors.Error``
  (SpecError, UsageError, ...), never another exception; ``ignored_fields(doc)`` never raises;
  the error's text can be printed;
- for one document in ``--cli-every`` (and only when the plan is safe to create on this host: a
  new mount and pid namespace, no namespace joined by path, no hooks, the group under
  /clonekit-test/), the real CLI ``create`` then ``delete --force`` with a private ``--root``:
  no Python traceback, exit 0 or one clear error line, and nothing left behind (state dir,
  groups, mounts, processes in the rootfs).

The seed is printed; the same seed gives the same documents.  Exit status 1 when a check failed.
The generator is shared with tests/runtime/test_fuzz_config.py (a few hundred cases in CI).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

from clonekit.errors import Error  # noqa: E402
from clonekit.runtime import spec as _spec  # noqa: E402
from clonekit.runtime.defaults import default_config  # noqa: E402
from clonekit.runtime.spec import plan_from_dict  # noqa: E402

#: the warning of fields accepted but not applied: gone once everything is applied
ignored_fields = getattr(_spec, "ignored_fields", lambda doc: [])

CGROUP_TOP = "/sys/fs/cgroup"

# -- the generator ----------------------------------------------------------------------------

CAPS = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_KILL", "CAP_NET_RAW", "CAP_MKNOD", "CAP_BPF",
        "CAP_LAST_CAP", "CAP_", "cap_kill", "KILL", "CAP_SYS_ADMIN ", "CAP_99"]
RLIMITS = ["RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_AS", "RLIMIT_RTTIME",
           "RLIMIT_BOGUS", "nofile", "RLIMIT_"]
SECCOMP_ACTIONS = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                   "SCMP_ACT_TRAP", "SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
                   "SCMP_ACT_KILL_THREAD", "SCMP_ACT_BOGUS", "allow"]
SECCOMP_OPS = ["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT",
               "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_BOGUS"]
ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
          "SCMP_ARCH_BOGUS"]
SYSCALLS = ["read", "write", "mount", "open_by_handle_at", "ioctl", "clone", "clone3", "keyctl",
            "no_such_syscall", "", "unshare", "ptrace", "personality"]
NS_KINDS = ["pid", "network", "ipc", "uts", "mount", "user", "cgroup", "time", "net", "bogus"]
DEVICE_TYPES = ["a", "b", "c", "u", "p", "x", ""]

STRINGS = ["", "\ud800", "a\ud800b", "\udfff", "\x00", "a\x00b", "../../../etc", "/", "//", "/..",
           "relative/path", " ", "\n", "é", "\U0001f600", "x" * 5000, "-1", "0", "true",
           "null", "%s%n", "/proc/self/exe", "rw,suid", "SCMP_ACT_ALLOW", "CAP_SYS_ADMIN"]
INTS = [0, -1, 1, 2, 7, 255, 65535, 65536, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32,
        (1 << 63) - 1, 1 << 63, 1 << 64, -(1 << 63), -(1 << 63) - 1, 10 ** 100, -(10 ** 100)]
FLOATS = [0.5, -0.0, 1e308, -1e308, 1.0, 3.0, float("inf"), float("-inf"), float("nan")]


def rand_scalar(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice(INTS)
    if kind == 3:
        return rng.choice(FLOATS)
    if kind == 4:
        return rng.choice(STRINGS)
    return "".join(rng.choice("abcxyz/._-\ud800\x00é") for _ in range(rng.randrange(1, 12)))


def rand_value(rng: random.Random, depth: int = 0) -> Any:
    if depth > 3 or rng.random() < 0.6:
        return rand_scalar(rng)
    if rng.random() < 0.5:
        return [rand_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rand_key(rng): rand_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def rand_key(rng: random.Random) -> str:
    return rng.choice(["", "type", "path", "\ud800", "x", "args", "options", "allow", "names",
                       "action", "uid", "gid", "size", "hard", "soft", "__proto__", "a" * 300])


def deep(rng: random.Random, depth: int) -> Any:
    value: Any = rand_scalar(rng)
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"a": value}
    return value


def rand_capabilities(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return rand_value(rng)
    sets = ["bounding", "effective", "permitted", "inheritable", "ambient", "bogus"]
    out: dict[str, Any] = {}
    for name in rng.sample(sets, rng.randrange(len(sets))):
        out[name] = ([rng.choice(CAPS) for _ in range(rng.randrange(5))] if rng.random() < 0.85
                     else rand_value(rng))
    return out


def rand_rlimits(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return rand_value(rng)
    out = []
    for _ in range(rng.randrange(4)):
        item: dict[str, Any] = {"type": rng.choice(RLIMITS), "hard": rng.choice(INTS),
                                "soft": rng.choice(INTS)}
        if rng.random() < 0.2:
            del item[rng.choice(list(item))]
        if rng.random() < 0.2:
            item[rng.choice(list(item))] = rand_value(rng)
        out.append(item)
    return out


def rand_seccomp(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return rand_value(rng)
    doc: dict[str, Any] = {"defaultAction": rng.choice(SECCOMP_ACTIONS)}
    if rng.random() < 0.5:
        doc["architectures"] = [rng.choice(ARCHES) for _ in range(rng.randrange(3))]
    if rng.random() < 0.3:
        doc["defaultErrnoRet"] = rng.choice(INTS)
    if rng.random() < 0.2:
        doc["flags"] = [rng.choice(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                    "SECCOMP_FILTER_FLAG_TSYNC", "BOGUS"])]
    if rng.random() < 0.1:
        doc["listenerPath"] = rng.choice(STRINGS)
    rules = []
    for _ in range(rng.randrange(5)):
        rule: dict[str, Any] = {"names": [rng.choice(SYSCALLS) for _ in range(rng.randrange(1, 4))],
                                "action": rng.choice(SECCOMP_ACTIONS)}
        if rng.random() < 0.4:
            rule["args"] = [{"index": rng.choice(INTS), "value": rng.choice(INTS),
                             "valueTwo": rng.choice(INTS), "op": rng.choice(SECCOMP_OPS)}
                            for _ in range(rng.randrange(1, 8))]
        if rng.random() < 0.2:
            rule["errnoRet"] = rng.choice(INTS)
        if rng.random() < 0.15:
            rule[rng.choice(list(rule))] = rand_value(rng)
        rules.append(rule)
    doc["syscalls"] = rules
    return doc


def rand_devices(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return rand_value(rng)
    out = []
    for _ in range(rng.randrange(4)):
        item: dict[str, Any] = {"allow": rng.choice([True, False, rand_scalar(rng)])}
        if rng.random() < 0.7:
            item["type"] = rng.choice(DEVICE_TYPES)
        if rng.random() < 0.6:
            item["major"] = rng.choice(INTS)
        if rng.random() < 0.6:
            item["minor"] = rng.choice(INTS)
        if rng.random() < 0.8:
            item["access"] = rng.choice(["rwm", "r", "w", "m", "", "rwmx", "rrr", "\ud800"])
        out.append(item)
    return out


# paths of the document: lists of keys/indexes
Path = list[Any]


def walk(value: Any, limit: int = 40) -> Iterator[tuple[Path, Any]]:
    """Every (path, value) of the document, parents first, down to ``limit`` levels (a deeply
    nested value counts as one leaf)."""
    stack: list[tuple[Path, Any]] = [([], value)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if len(path) >= limit:
            continue
        if isinstance(node, dict):
            stack.extend(([*path, k], v) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend(([*path, i], v) for i, v in reversed(list(enumerate(node))))


def set_at(doc: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def del_at(doc: Any, path: Path) -> Any:
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    return doc


def show(path: Path) -> str:
    return "$" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)


def ensure(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    """doc[k1][k2]... as dicts (made, or replaced when not a dict)."""
    node = doc
    for key in keys:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    return node


def mutate(doc: Any, rng: random.Random) -> tuple[Any, str]:
    """One mutation of ``doc`` (in place where it can); returns the doc and what was done."""
    paths = list(walk(doc))
    kind = rng.randrange(17)
    if kind >= 13:                                 # the security sections, more often
        kind = rng.choice([8, 9, 10, 11])
    if kind == 0:                                  # a value of another type
        path, _ = rng.choice(paths)
        return set_at(doc, path, rand_value(rng)), f"type {show(path)}"
    if kind == 1:                                  # remove a field
        path, _ = rng.choice(paths[1:] or paths)
        if not path:
            return doc, "nothing"
        return del_at(doc, path), f"del {show(path)}"
    if kind == 2:                                  # add a field
        dicts = [(p, v) for p, v in paths if isinstance(v, dict)]
        if not dicts:
            return doc, "nothing"
        path, node = rng.choice(dicts)
        key = rng.choice([rand_key(rng), "capabilities", "rlimits", "seccomp", "resources",
                          "hooks", "unknownField", "uidMappings", "devices", "sysctl"])
        node[key] = rand_value(rng)
        return doc, f"add {show([*path, key])}"
    if kind == 3:                                  # lone surrogates in every string field
        for path, value in paths:
            if isinstance(value, str) and path:
                set_at(doc, path, value + "\ud800")
        return doc, "surrogates in every string"
    if kind == 4:                                  # a surrogate in one string (or key)
        strs = [(p, v) for p, v in paths if isinstance(v, str) and p]
        if strs:
            path, value = rng.choice(strs)
            return set_at(doc, path, rng.choice(["\ud800", value + "\udc00", "\ud800" + value])), \
                f"surrogate {show(path)}"
        return doc, "nothing"
    if kind == 5:                                  # deep nesting
        path, _ = rng.choice(paths)
        depth = rng.choice([50, 500, 3000])
        return set_at(doc, path, deep(rng, depth)), f"deep({depth}) {show(path)}"
    if kind == 6:                                  # huge / negative numbers at number leaves
        nums = [(p, v) for p, v in paths if isinstance(v, (int, float)) and not isinstance(v, bool) and p]
        if nums:
            path, _ = rng.choice(nums)
            return set_at(doc, path, rng.choice(INTS + FLOATS)), f"number {show(path)}"
        return doc, "nothing"
    if not isinstance(doc, dict):
        return doc, "nothing"
    if kind == 7:                                  # wrong enum values
        choice = rng.randrange(5)
        linux = ensure(doc, "linux")
        if choice == 0:
            linux["namespaces"] = [{"type": rng.choice(NS_KINDS)} for _ in range(rng.randrange(7))]
            return doc, "namespaces"
        if choice == 1:
            linux["rootfsPropagation"] = rng.choice(["private", "rshared", "bogus", "", "\ud800"])
            return doc, "rootfsPropagation"
        if choice == 2:
            linux["devices"] = [{"type": rng.choice(DEVICE_TYPES), "path": rng.choice(STRINGS),
                                 "major": rng.choice(INTS), "minor": rng.choice(INTS)}]
            return doc, "linux.devices"
        if choice == 3:
            doc["ociVersion"] = rng.choice(["1.0.0", "2.0.0", "1.2.0-rc", "", "1", "\ud800"])
            return doc, "ociVersion"
        mounts = doc.get("mounts")
        if isinstance(mounts, list) and mounts and isinstance(mounts[0], dict):
            m = rng.choice(mounts)
            if isinstance(m, dict):
                m["options"] = [rng.choice(["rbind", "ro", "rw", "bogus", "size=-1", "mode=99999",
                                            "idmap", "\ud800", "", "rprivate", "suid"])
                                for _ in range(rng.randrange(4))]
        return doc, "mount options"
    if kind == 8:
        ensure(doc, "process")["capabilities"] = rand_capabilities(rng)
        return doc, "capabilities"
    if kind == 9:
        ensure(doc, "process")["rlimits"] = rand_rlimits(rng)
        return doc, "rlimits"
    if kind == 10:
        ensure(doc, "linux")["seccomp"] = rand_seccomp(rng)
        return doc, "seccomp"
    if kind == 11:
        ensure(doc, "linux", "resources")["devices"] = rand_devices(rng)
        if rng.random() < 0.3:
            ensure(doc, "linux", "resources")["pids"] = {"limit": rng.choice(INTS)}
        return doc, "resources.devices"
    # id maps / user
    if rng.random() < 0.5:
        ensure(doc, "linux")["uidMappings"] = [{"containerID": rng.choice(INTS), "hostID": rng.choice(INTS),
                                                "size": rng.choice(INTS)} for _ in range(rng.randrange(3))]
        return doc, "uidMappings"
    ensure(doc, "process")["user"] = {"uid": rng.choice(INTS), "gid": rng.choice(INTS),
                                      "additionalGids": [rng.choice(INTS)], "umask": rng.choice(INTS)}
    return doc, "process.user"


def bases(rootfs: str) -> list[dict[str, Any]]:
    """The documents the mutations start from: `clonekit spec`'s (root, rootless) and the test
    suite's base_config, pointed at ``rootfs``, terminal off (so a valid one can be created)."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    sys.path.insert(0, os.path.join(REPO, "tests", "runtime"))
    # by its own name: `conftest` may be another test directory's module by now
    from runtime_helpers import base_config  # type: ignore[import-not-found]

    out = []
    for rootless in (False, True):
        doc: Any = default_config(rootless=rootless)
        doc["root"]["path"] = rootfs
        doc["process"]["terminal"] = False
        doc["process"]["args"] = ["true"]
        out.append(doc)
    out.append(base_config(rootfs, ["true"], "fuzz"))
    return out


def generate(seed: int, count: int, rootfs: str) -> Iterator[tuple[int, Any, list[str]]]:
    """(case number, document, mutations) for ``count`` cases; the same seed, the same cases."""
    rng = random.Random(seed)
    starts = bases(rootfs)
    for i in range(count):
        doc: Any = copy.deepcopy(rng.choice(starts))
        done = []
        # one mutation half the time: the parser stops at the first bad field, so a lone
        # mutation reaches the sections parsed last (linux.seccomp, resources)
        for _ in range(1 if rng.random() < 0.5 else rng.randrange(2, 5)):
            doc, what = mutate(doc, rng)
            done.append(what)
        yield i, doc, done


# -- the checks -------------------------------------------------------------------------------

@dataclasses.dataclass
class Failure:
    case: int
    where: str          # "in-process" or "cli"
    kind: str           # exception class, or what went wrong
    detail: str
    mutations: list[str]
    doc: Any

    def reproducer(self) -> str:
        text = json.dumps(self.doc)
        if len(text) > 600:
            text = text[:600] + f"... ({len(text)} chars)"
        return text


def check_in_process(doc: Any, bundle: str) -> tuple[str, Any, str | None]:
    """("ok"|error class name, plan or None, failure description or None)."""
    try:
        ignored_fields(doc)
    except Exception as exc:
        return type(exc).__name__, None, f"ignored_fields raised {type(exc).__name__}: {exc!r:.300}\n" \
            + "".join(traceback.format_exception(exc)[-3:])
    try:
        plan = plan_from_dict(doc, bundle)
    except Error as exc:
        try:
            str(exc).encode("utf-8", "backslashreplace")
        except Exception as inner:
            return type(exc).__name__, None, f"str() of {type(exc).__name__} raised {inner!r}"
        where = str(getattr(exc, "json_path", "") or "").replace("[", ".").split(".")
        section = ".".join(where[:3])[:28] if len(where) > 1 else ""
        return f"{type(exc).__name__} {section}".strip(), None, None
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        last = tb[-1] if tb else None
        at = f" at {os.path.basename(last.filename)}:{last.lineno} ({last.name})" if last else ""
        return type(exc).__name__, None, f"{type(exc).__name__}{at}: {str(exc)[:300]}"
    return "ok", plan, None


def safe_to_create(plan: Any, cid: str) -> bool:
    """Create only what keeps the host untouched: new mount and pid namespaces, none joined by
    path, no hooks (they run on the host), the group under /clonekit-test/."""
    kinds = {ns.kind: ns.path for ns in plan.namespaces}
    if "mount" not in kinds or "pid" not in kinds or any(p is not None for p in kinds.values()):
        return False
    if any(getattr(plan.hooks, name, ()) for name in
           ("prestart", "create_runtime", "create_container", "start_container", "poststart", "poststop")):
        return False
    return plan.cgroups_path == f"/clonekit-test/{cid}"


def cgroup_dirs(cid: str) -> list[str]:
    found = []
    for hierarchy in sorted(os.listdir(CGROUP_TOP)):
        path = os.path.join(CGROUP_TOP, hierarchy, "clonekit-test", cid)
        if os.path.isdir(path):
            found.append(path)
    return found


def processes_in(top: str) -> list[int]:
    """Processes whose root or cwd is under ``top`` (a container init left running)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        for link in ("root", "cwd"):
            try:
                if os.readlink(f"/proc/{entry}/{link}").startswith(top):
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return found


def children() -> set[int]:
    kids: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                kids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return kids


def clonekit_mounts(top: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if "clonekit" in line and top in line]


class Workspace:
    """A private rootfs, bundles and --root for the CLI cases; removed at the end."""

    def __init__(self) -> None:
        from clonekit.runtime.busybox import build_rootfs

        self.top = tempfile.mkdtemp(prefix="clonekit-fuzz-")
        os.chmod(self.top, 0o755)
        self.rootfs = build_rootfs(os.path.join(self.top, "rootfs"))
        self.bundle = os.path.join(self.top, "bundle")
        os.mkdir(self.bundle)
        self.root = os.path.join(self.top, "state")

    def close(self) -> None:
        shutil.rmtree(self.top, ignore_errors=True)


def cli(ws: Workspace, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "clonekit", "--root", ws.root, *argv]
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+", errors="replace") as err:
        proc = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout,
                              env=env, cwd=ws.top)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and ": warning: " not in line
            and ": notice: " not in line]


def check_cli(ws: Workspace, doc: Any, cid: str) -> str | None:
    """create + delete --force of ``doc``; a failure description or None."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)   # the encoder recurses: a deeply nested case is written whole
    try:
        text = json.dumps(doc)     # ensure_ascii: a lone surrogate is written as \\ud800
    finally:
        sys.setrecursionlimit(limit)
    with open(os.path.join(ws.bundle, "config.json"), "w") as f:
        f.write(text)
    mounts_before = clonekit_mounts(ws.top)
    kids_before = children()
    problems = []
    try:
        created = cli(ws, "create", "--bundle", ws.bundle, cid)
    except subprocess.TimeoutExpired:
        created = None
        problems.append("create timed out")
    finally:
        deleted = cli(ws, "delete", "--force", cid)
    if created is not None:
        if "Traceback" in created.stderr:
            problems.append(f"traceback from create (exit {created.returncode}):\n{created.stderr[-1500:]}")
        elif created.returncode != 0:
            lines = error_lines(created.stderr)
            if len(lines) != 1 or not lines[0].startswith("clonekit"):
                problems.append(f"create exit {created.returncode} without one clear error line: "
                                f"{created.stderr[-600:]!r}")
        if created.returncode == 0 and deleted.returncode != 0:
            problems.append(f"delete --force failed: {deleted.stderr[-400:]}")
    if "Traceback" in deleted.stderr:
        problems.append(f"traceback from delete:\n{deleted.stderr[-1500:]}")
    if os.path.isdir(ws.root) and os.listdir(ws.root):
        problems.append(f"state left behind: {os.listdir(ws.root)}")
        for name in os.listdir(ws.root):
            cli(ws, "delete", "--force", name)
    left = cgroup_dirs(cid)
    if left:
        problems.append(f"groups left behind: {left}")
        for path in left:
            try:
                os.rmdir(path)
            except OSError:
                pass
    if clonekit_mounts(ws.top) != mounts_before:
        problems.append("mounts left behind: "
                        f"{sorted(set(clonekit_mounts(ws.top)) - set(mounts_before))}")
    stray = processes_in(ws.top)
    if stray:
        problems.append(f"processes left in the rootfs: {stray}")
    new_kids = children() - kids_before
    if new_kids:
        problems.append(f"child processes left: {sorted(new_kids)}")
    return "\n".join(problems) or None


def prepare_for_cli(doc: Any, cid: str) -> Any:
    """The document with its group under /clonekit-test/ and no hooks (they would run on the
    host); other fields as mutated."""
    if isinstance(doc, dict):          # copies of the two levels changed (deepcopy recurses)
        doc = dict(doc)
        doc.pop("hooks", None)
        if isinstance(doc.get("linux"), dict):
            doc["linux"] = dict(doc["linux"], cgroupsPath=f"/clonekit-test/{cid}")
    return doc


@dataclasses.dataclass
class Results:
    cases: int = 0
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    cli_cases: int = 0
    cli_created: int = 0
    failures: list[Failure] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def fuzz(seed: int, count: int, cli_every: int = 100, cli_limit: int | None = None,
         out: Any = None) -> Results:
    """Run ``count`` cases; every ``cli_every``-th safe one (at most ``cli_limit``) also via the CLI."""
    res = Results()
    start = time.monotonic()
    ws = Workspace()
    try:
        for i, doc, done in generate(seed, count, ws.rootfs):
            res.cases += 1
            outcome, _, problem = check_in_process(doc, ws.bundle)
            res.outcomes[outcome] = res.outcomes.get(outcome, 0) + 1
            if problem:
                res.failures.append(Failure(i, "in-process", outcome, problem, done, doc))
                continue
            # ~1% of all cases, and more of the valid ones (few survive the mutations)
            sampled = i % cli_every == cli_every - 1 if cli_every > 0 else False
            if cli_every > 0 and outcome == "ok" and i % max(1, cli_every // 10) == 0:
                sampled = True
            if not sampled:
                continue
            if cli_limit is not None and res.cli_cases >= cli_limit:
                continue
            cid = f"ck-fuzz-{uuid.uuid4().hex[:8]}"
            doc = prepare_for_cli(doc, cid)
            outcome, plan, problem = check_in_process(doc, ws.bundle)
            if problem or (plan is not None and not safe_to_create(plan, cid)):
                continue
            res.cli_cases += 1
            res.cli_created += plan is not None
            problem = check_cli(ws, doc, cid)
            if problem:
                res.failures.append(Failure(i, "cli", outcome, problem, done, doc))
            if out is not None:
                print(f"  cli case {i}: {outcome}{' FAILED' if problem else ''}", file=out, flush=True)
    finally:
        ws.close()
    res.seconds = time.monotonic() - start
    return res


def summary(res: Results, seed: int) -> str:
    lines = [f"seed {seed}: {res.cases} documents in {res.seconds:.1f} s; "
             f"{res.cli_cases} through the CLI ({res.cli_created} valid, created and deleted)"]
    ranked = sorted(res.outcomes.items(), key=lambda kv: -kv[1])
    for name, n in ranked[:25]:
        lines.append(f"  {name:<40} {n}")
    if len(ranked) > 25:
        lines.append(f"  ({len(ranked) - 25} more kinds, {sum(n for _, n in ranked[25:])} documents)")
    lines.append(f"failures: {len(res.failures)}")
    seen: set[tuple[str, str]] = set()
    for f in res.failures:
        key = (f.where, f.detail.splitlines()[0][:120])
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"- case {f.case} [{f.where}] {f.kind}: mutations {f.mutations}\n    {f.detail[:1500]}"
                     f"\n    input: {f.reproducer()}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--cli-every", type=int, default=100, help="one case in N also through the CLI "
                    "(0: none); needs root")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"fuzz_config: seed {seed} (rerun with --seed {seed})", flush=True)
    cli_every = args.cli_every if os.geteuid() == 0 else 0
    res = fuzz(seed, args.cases, cli_every, out=sys.stdout)
    print(summary(res, seed))
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())
