"""Namespaces joined by path, the loopback of a new network namespace, socket activation,
stdio in a user namespace and --preserve-fds, each seen from inside the container and, where
runc 1.1 can run the bundle, side by side with runc.

- A user namespace joined by path with a network namespace the initial user namespace owns:
  every file is opened before the first setns, and the namespaces the runtime could no longer
  enter from inside the user namespace are joined before it (runc's nsexec order).
- ``lo`` is up in a new network namespace (runc brings it up; the kernel leaves it down).
- ``LISTEN_FDS``/``LISTEN_PID``: the activation fds come first, then the preserved ones, and the
  process gets LISTEN_FDS=N, LISTEN_PID=1, as runc gives them.
- A user namespace's process gets its stdio files chowned, so it can reopen /proc/self/fd/1.
- ``--preserve-fds N`` hands over only the fds the caller has open (runc 1.1.5 here hands over
  whatever of its own sits at an unopened number, its /sys/fs/cgroup fd among them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from runtime_helpers import RUNC, run_cmd, script, sections

from waiting import wait_for

needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt install runc)")
USERNS_MAPS = {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
               "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}


class Holder:
    """A process of ours in namespaces of its own (``unshare`` flags), held for a test."""

    def __init__(self, *flags: str) -> None:
        self.proc = subprocess.Popen(["unshare", *flags, "sleep", "600"], stdin=subprocess.DEVNULL)
        kinds = [{"--net": "net", "--user": "user", "--ipc": "ipc"}[f] for f in flags if f in
                 ("--net", "--user", "--ipc")]
        wait_for(lambda: all(os.readlink(self.ns(k)) != os.readlink(f"/proc/self/ns/{k}") for k in kinds),
                 what="the holder's unshare")

    def ns(self, kind: str) -> str:
        return f"/proc/{self.proc.pid}/ns/{kind}"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def holders():
    made: list[Holder] = []

    def make(*flags: str) -> Holder:
        made.append(Holder(*flags))
        return made[-1]

    yield make
    for h in made:
        h.close()


def _ck(bundles, *args: str) -> list[str]:
    return [sys.executable, "-m", "clonekit", "--root", bundles.root, *args]


def _wait_stopped(bundles, cid: str) -> None:
    wait_for(lambda: json.loads(bundles.cli("state", cid).stdout)["status"] == "stopped",
             what=f"{cid} to stop")


def _without_sys(config) -> None:
    # sysfs cannot be mounted by a user namespace that does not own the network namespace
    # (both runtimes get EPERM from the kernel): leave it out of these bundles
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys"]


NS_SEEN = script(net="readlink /proc/self/ns/net", user="readlink /proc/self/ns/user",
                 maps="cat /proc/self/uid_map")


def test_a_joined_user_namespace_with_a_host_owned_network_namespace(bundles, holders):
    """The case that failed with EACCES: the network namespace file was opened after the user
    namespace was joined, when the host's /proc/PID/ns files no longer open."""
    net, user = holders("--net"), holders("--user", "--map-root-user")

    def join(config):
        _without_sys(config)
        spaces = [n for n in config["linux"]["namespaces"] if n["type"] != "network"]
        config["linux"]["namespaces"] = [{"type": "user", "path": user.ns("user")},
                                         {"type": "network", "path": net.ns("net")}, *spaces]

    cid, bundle, _ = bundles.new(NS_SEEN, edit=[join])
    seen = sections(bundles.cli("run", "--bundle", bundle, cid).stdout)
    assert seen["net"].strip() == os.readlink(net.ns("net"))
    assert seen["user"].strip() == os.readlink(user.ns("user"))
    assert seen["maps"].split() == ["0", "0", "1"]  # --map-root-user's map


@needs_runc
def test_a_new_user_namespace_with_a_host_owned_network_namespace_like_runc(pair, holders):
    net = holders("--net")

    def join(config):
        _without_sys(config)
        config["linux"].update(USERNS_MAPS)
        spaces = [n for n in config["linux"]["namespaces"] if n["type"] != "network"]
        config["linux"]["namespaces"] = [*spaces, {"type": "user"},
                                         {"type": "network", "path": net.ns("net")}]
        config["ociVersion"] = "1.0.2"  # runc 1.1 refuses newer

    results = pair.run(NS_SEEN, join)
    seen = {}
    for name, out in results.items():
        assert out.returncode == 0, (name, out.stderr)
        seen[name] = sections(out.stdout)
        assert seen[name]["net"].strip() == os.readlink(net.ns("net"))
    assert seen["clonekit"]["maps"] == seen["runc"]["maps"]
    for name in seen:  # each made its own
        assert seen[name]["user"].strip() != os.readlink("/proc/self/ns/user"), name


@needs_runc
def test_lo_is_up_in_a_new_network_namespace_like_runc(pair):
    results = pair.run(["ip", "-o", "link", "show", "lo"])
    for name, out in results.items():
        assert out.returncode == 0, (name, out.stderr)
        flags = out.stdout.split("<", 1)[1].split(">", 1)[0].split(",")
        assert "UP" in flags and "LOWER_UP" in flags, (name, out.stdout)
    assert results["clonekit"].stdout.split("qlen")[0] == results["runc"].stdout.split("qlen")[0]


# the shell's own fds (a $(...) would add a pipe of its own)
FDS_SEEN = ["/bin/sh", "-c", "for f in 3 4 5 6; do echo -n $f=; readlink /proc/$$/fd/$f 2>/dev/null || "
            "echo none; done; echo LISTEN=${LISTEN_FDS-unset}:${LISTEN_PID-unset}"]


def _fds_seen(pair, pre: str, *opts: str) -> dict[str, str]:
    out = {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, FDS_SEEN, (lambda c: c.update(ociVersion="1.0.2"),))
        result = rt.cli("run", *opts, "--bundle", bundle, cid, pre=pre)
        assert result.returncode == 0, (rt.name, result.stderr)
        out[rt.name] = result.stdout
    return out


@needs_runc
def test_socket_activation_fds_and_env_are_passed_like_runc(pair):
    # $$ of `pre` is the runtime's pid (exec keeps it): the fds are for it
    pre = "exec 3</etc/hostname 4</etc/passwd 5</etc/group; export LISTEN_FDS=2 LISTEN_PID=$$; "
    seen = _fds_seen(pair, pre, "--preserve-fds", "1")
    assert seen["clonekit"] == seen["runc"]
    assert seen["clonekit"].split() == ["3=/etc/hostname", "4=/etc/passwd", "5=/etc/group", "6=none",
                                        "LISTEN=2:1"]


@needs_runc
def test_socket_activation_meant_for_another_process_is_not_passed_like_runc(pair):
    pre = "exec 3</etc/hostname; export LISTEN_FDS=1 LISTEN_PID=1; "
    seen = _fds_seen(pair, pre)
    # neither the fd nor the variables: the container's env is the config's
    assert seen["clonekit"] == seen["runc"]
    assert seen["clonekit"].split() == ["3=none", "4=none", "5=none", "6=none", "LISTEN=unset:unset"]


def test_preserve_fds_skips_what_the_caller_did_not_open_and_start_does_not_wait(bundles):
    """fds 3 and 5 are not open: the runtime's own fds (its lock on the state dir among them)
    take those numbers, and must not reach the container -- a leaked lock kept `start` waiting
    for ever; now the numbers are skipped instead of refused."""
    cid, bundle, _ = bundles.new(FDS_SEEN)
    out, err = os.path.join(bundles.tmp, "out"), os.path.join(bundles.tmp, "err")
    with open(out, "w") as f, open(err, "w") as e:  # files: the init keeps them (a pipe never ends)
        argv = _ck(bundles, "create", "--preserve-fds", "3", "--bundle", bundle, cid)
        proc = subprocess.run(["/bin/sh", "-c", 'exec 4</etc/hostname; exec "$@"', "sh", *argv], stdout=f,
                              stderr=e, stdin=subprocess.DEVNULL, timeout=30)
    with open(err) as e:
        assert proc.returncode == 0, e.read()
    bundles.cli("start", cid, timeout=10)
    _wait_stopped(bundles, cid)
    with open(out) as f:
        assert f.read().split() == ["3=none", "4=/etc/hostname", "5=none", "6=none", "LISTEN=unset:unset"]


STDIO_SEEN = ["/bin/sh", "-c", "id -u; echo reopened >> /proc/self/fd/1 && echo ok"]


def _in_userns(config) -> None:
    config["ociVersion"] = "1.0.2"
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["linux"].update(USERNS_MAPS)
    config["linux"]["namespaces"].append({"type": "user"})


@needs_runc
def test_stdio_files_are_given_to_the_user_namespaces_process_like_runc(pair, tmp_path):
    """A file owned by the container's root (host uid 100000), mode 0600, as stdout of a process
    running as container uid 1000: chowned to it, so it can reopen /proc/self/fd/1."""
    seen = {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, STDIO_SEEN, (_in_userns,))
        path = str(tmp_path / f"out-{rt.name}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchown(fd, 100000, 100000)
            # create, not run: runc's foreground run gives the container pipes of its own
            subprocess.run(rt.command("create", "--bundle", bundle, cid), stdout=fd,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True, timeout=30)
        finally:
            os.close(fd)
        rt.cli("start", cid, check=True)
        rt.wait_status(cid, "stopped")
        with open(path) as f:
            seen[rt.name] = (f.read(), os.stat(path).st_uid)
    assert seen["clonekit"] == seen["runc"] == ("1000\nreopened\nok\n", 101000)


def test_stdio_owned_by_an_unmapped_user_is_left_alone(bundles, tmp_path):
    cid, bundle, _ = bundles.new(STDIO_SEEN, edit=[_in_userns])
    path = str(tmp_path / "out")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # ours: host root, unmapped
    try:
        subprocess.run(_ck(bundles, "create", "--bundle", bundle, cid), stdout=fd,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True, timeout=30)
    finally:
        os.close(fd)
    bundles.cli("start", cid)
    _wait_stopped(bundles, cid)
    with open(path) as f:
        assert f.read() == "1000\n"  # the reopen is refused, as under runc and crun
    assert os.stat(path).st_uid == 0


@needs_runc
def test_exec_gives_stdio_to_the_process_too_like_runc(pair, tmp_path):
    seen = {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, ["sleep", "30"], (_in_userns,))
        rt.cli("run", "--detach", "--bundle", bundle, cid, check=True)
        path = str(tmp_path / f"exec-{rt.name}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchown(fd, 100000, 100000)
            # detached: runc's foreground exec gives the process pipes of its own
            subprocess.run(rt.command("exec", "--detach", cid, *STDIO_SEEN), stdout=fd,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True, timeout=30)
        finally:
            os.close(fd)

        def done(path: str = path) -> str | None:
            with open(path) as f:
                text = f.read()
            return text if text.endswith("ok\n") else None  # (a refused reopen never gets there)

        seen[rt.name] = (wait_for(done, what=f"{rt.name}'s exec"), os.stat(path).st_uid)
    assert seen["clonekit"] == seen["runc"] == ("1000\nreopened\nok\n", 101000)


def test_a_rootless_runtime_joins_its_own_user_and_network_namespaces(user):
    """The user's `unshare -U -r -n` holder: the rootless runtime cannot enter its network
    namespace from the initial user namespace (EPERM), so that one is put off until the user
    namespace given by path is joined (runc's order), and then it succeeds."""
    from test_rootless_containers import Home

    home = Home(user)
    holder = subprocess.Popen(user.wrap(["unshare", "-U", "-r", "-n", "sleep", "600"]), cwd="/",
                              stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"),
                 what="the holder's unshare")

        def join(config):
            for key in ("uidMappings", "gidMappings"):
                config["linux"].pop(key, None)
            spaces = [n for n in config["linux"]["namespaces"] if n["type"] not in ("user", "network")]
            config["linux"]["namespaces"] = [{"type": "network", "path": f"/proc/{holder.pid}/ns/net"},
                                             {"type": "user", "path": f"/proc/{holder.pid}/ns/user"},
                                             *spaces]
            config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys"]

        cid, bundle = home.bundle(NS_SEEN, join)
        out = home.cli("run", "--bundle", bundle, cid)
        assert out.returncode == 0, out.stderr
        seen = sections(out.stdout)
        assert seen["net"].strip() == os.readlink(f"/proc/{holder.pid}/ns/net")
        assert seen["user"].strip() == os.readlink(f"/proc/{holder.pid}/ns/user")
        assert seen["maps"].split() == ["0", str(user.uid), "1"]
    finally:
        holder.kill()
        holder.wait()
    try:
        home.assert_nothing_left()
    finally:
        home.cleanup()


def test_exec_preserve_fds_skips_what_the_caller_did_not_open(bundles):
    cid, bundle, _ = bundles.new(["sleep", "30"])
    bundles.cli("run", "--detach", "--bundle", bundle, cid)
    out = run_cmd(_ck(bundles, "exec", "--preserve-fds", "3", cid, *FDS_SEEN), pre="exec 4</etc/hostname; ",
                  timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3=none", "4=/etc/hostname", "5=none", "6=none", "LISTEN=unset:unset"]
