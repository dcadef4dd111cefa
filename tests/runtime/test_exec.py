"""`clonekit exec`: the process is the container's in every way /proc shows (namespaces,
cgroups, root, capabilities, no_new_privs, seccomp, limits), runc's overrides apply, the exit
status comes back, and the refusals and errors read as runc's.  Side by side with runc where
both run the same bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from runtime_helpers import RUNC, Runtime, run_cmd

from clonekit.runtime.defaults import default_config

NS = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts")
STATUS_LINES = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters")
SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["mknod", "mknodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}

needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


def confined(config) -> None:
    """`runc spec`'s capabilities and rlimits, a seccomp filter, no_new_privs (base_config's)."""
    spec = default_config(rootless=False)
    for key in ("capabilities", "rlimits"):
        config["process"][key] = spec["process"][key]
    config["linux"]["seccomp"] = SECCOMP


def started(rt: Runtime, cid: str, bundle: str) -> int:
    """`run -d` a bundle whose program sleeps; the init's host pid."""
    rt.cli("run", "--detach", "--bundle", bundle, cid, check=True)
    return int(rt.state(cid)["pid"])


def detached(rt: Runtime, cid: str, tmp_path, *opts: str, args=("/bin/sleep", "1000")) -> int:
    """`exec -d --pid-file` a process; its host pid, once the runtime has returned."""
    pid_file = str(tmp_path / f"{cid}-{time.monotonic_ns()}.pid")
    result = rt.cli("exec", "--detach", "--pid-file", pid_file, *opts, cid, *args)
    assert result.returncode == 0, result.stderr
    with open(pid_file) as f:
        return int(f.read())


def status_lines(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        rows = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    return {k: rows[k] for k in STATUS_LINES}


def namespaces(pid: int) -> dict[str, str]:
    return {kind: os.readlink(f"/proc/{pid}/ns/{kind}") for kind in NS}


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def session_of(pid: int) -> int:
    text = read(f"/proc/{pid}/stat")
    return int(text[text.rindex(")") + 2:].split()[3])


@pytest.fixture
def ck(pair) -> Runtime:
    return pair.runtimes["clonekit"]


def one(pair, rt: Runtime, args: list[str], *edits) -> tuple[str, int]:
    cid, bundle = pair.bundle(rt, args, edits)
    return cid, started(rt, cid, bundle)


# -- what the process is ----------------------------------------------------------------------

def test_the_process_has_every_namespace_cgroup_root_and_confinement_of_the_init(pair, ck, tmp_path):
    cid, init = one(pair, ck, ["/bin/sleep", "1000"], confined)
    pid = detached(ck, cid, tmp_path)
    assert namespaces(pid) == namespaces(init)
    assert read(f"/proc/{pid}/cgroup") == read(f"/proc/{init}/cgroup")
    assert os.stat(f"/proc/{pid}/root/") == os.stat(f"/proc/{init}/root/")
    assert status_lines(pid) == status_lines(init)
    assert status_lines(pid)["Seccomp"] == "2" and status_lines(pid)["NoNewPrivs"] == "1"
    assert read(f"/proc/{pid}/limits") == read(f"/proc/{init}/limits")
    assert read(f"/proc/{pid}/cmdline") == "/bin/sleep\x001000\x00"
    assert session_of(pid) == pid  # a session of its own, as runc's setsid
    # the pid namespace is the container's: the process has a small pid there, not its host one
    nspid = [line for line in read(f"/proc/{pid}/status").splitlines() if line.startswith("NSpid:")]
    assert nspid[0].split()[1:] == [str(pid), nspid[0].split()[2]] and int(nspid[0].split()[2]) < pid


def test_inside_the_container_the_process_sees_what_the_init_sees(pair, ck):
    cid, _ = one(pair, ck, ["/bin/sleep", "1000"], confined)
    script = ("for n in cgroup ipc mnt net pid uts; do"
              " [ $(readlink /proc/self/ns/$n) = $(readlink /proc/1/ns/$n) ] || echo differs $n; done;"
              " cmp /proc/self/cgroup /proc/1/cgroup && echo cgroup same; hostname;"
              " mknod /tmp/x p || echo mknod refused")
    result = ck.cli("exec", cid, "/bin/sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["cgroup same", "clonekit-test", "mknod refused"]
    assert result.stderr.strip().endswith("Operation not permitted")


@needs_runc
def test_confinement_and_overrides_equal_runcs(pair, tmp_path):
    """The same bundle under both; each exec with the same flags: /proc/PID/status lines and the
    ids equal (--cap adds to every set, --no-new-privs, --user, --additional-gids)."""
    def no_nnp(config):
        confined(config)
        config["process"]["noNewPrivileges"] = False

    cases = [(), ("--cap", "CAP_SYS_ADMIN", "--cap", "CAP_NET_ADMIN"), ("--no-new-privs",),
             ("--user", "1000:1000", "--additional-gids", "5", "--additional-gids", "7")]
    seen: dict[str, list] = {}
    for name, rt in pair.runtimes.items():
        cid, _ = one(pair, rt, ["/bin/sleep", "1000"], no_nnp)
        for opts in cases:
            pid = detached(rt, cid, tmp_path, *opts)
            ids = [line for line in read(f"/proc/{pid}/status").splitlines()
                   if line.startswith(("Uid:", "Gid:", "Groups:"))]
            seen.setdefault(name, []).append((opts, status_lines(pid), ids))
    assert seen["clonekit"] == seen["runc"]
    assert seen["clonekit"][1][1]["CapEff"] != seen["clonekit"][0][1]["CapEff"]  # the caps did change
    assert seen["clonekit"][2][1]["NoNewPrivs"] == "1" and seen["clonekit"][0][1]["NoNewPrivs"] == "0"


@needs_runc
def test_env_cwd_user_and_home_as_runc(pair):
    script = "echo $FOO $HOME; pwd; id"
    out = {}
    for name, rt in pair.runtimes.items():
        cid, _ = one(pair, rt, ["/bin/sleep", "1000"])
        result = rt.cli("exec", "--env", "FOO=bar", "--env", "X=y", "--cwd", "/tmp", "-u", "65534:65534",
                        cid, "/bin/sh", "-c", script)
        assert result.returncode == 0, result.stderr
        out[name] = result.stdout
    assert out["clonekit"] == out["runc"]
    assert out["clonekit"].startswith("bar /\n/tmp\nuid=65534")


def test_process_file_replaces_the_configs_process(pair, ck, tmp_path):
    cid, _ = one(pair, ck, ["/bin/sleep", "1000"])
    process = {"args": ["/bin/sh", "-c", "echo $WHO; pwd; id -u"], "env": ["WHO=from-file", "PATH=/bin"],
               "cwd": "/dev", "user": {"uid": 2, "gid": 2}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    result = ck.cli("exec", "--process", str(path), cid)
    assert (result.returncode, result.stdout) == (0, "from-file\n/dev\n2\n"), result.stderr
    # checked like config.json, with the JSON path of the bad value
    path.write_text(json.dumps({**process, "cwd": "relative"}))
    bad = ck.cli("exec", "-p", str(path), cid)
    assert bad.returncode == 1 and "$.process.cwd" in bad.stderr and "Traceback" not in bad.stderr


# -- exit status, detach, fds -------------------------------------------------------------------

@needs_runc
def test_exit_status_passes_through_as_runcs(pair):
    cases = (["/bin/sh", "-c", "exit 7"], ["/bin/sh", "-c", "kill -9 $$"], ["/bin/sh", "-c", "kill -TERM $$"],
             ["/bin/true"])
    codes = {}
    for name, rt in pair.runtimes.items():
        cid, _ = one(pair, rt, ["/bin/sleep", "1000"])
        codes[name] = [rt.cli("exec", cid, *args).returncode for args in cases]
    assert codes["clonekit"] == codes["runc"] == [7, 137, 143, 0]


def test_detach_returns_while_the_process_runs_and_writes_its_pid(pair, ck, tmp_path):
    cid, init = one(pair, ck, ["/bin/sleep", "1000"])
    pid = detached(ck, cid, tmp_path, args=("/bin/sleep", "999"))
    assert read(f"/proc/{pid}/cmdline") == "/bin/sleep\x00999\x00"
    assert pid in json.loads(ck.cli("ps", "--format", "json", cid, check=True).stdout)
    assert init in json.loads(ck.cli("ps", "--format", "json", cid, check=True).stdout)


@needs_runc
def test_only_stdio_and_preserved_fds_reach_the_process(pair, tmp_path):
    secret = tmp_path / "fd3"
    secret.write_text("handed over\n")
    pre = f"exec 3<{secret} 4</etc/hostname; "
    out = {}
    for name, rt in pair.runtimes.items():
        cid, _ = one(pair, rt, ["/bin/sleep", "1000"])
        kept = run_cmd(rt.command("exec", "--preserve-fds", "1", cid, "/bin/sh", "-c",
                                  "cat <&3; ls /proc/self/fd"), pre=pre)
        closed = run_cmd(rt.command("exec", cid, "/bin/ls", "/proc/self/fd"), pre=pre)
        out[name] = (kept.returncode, kept.stdout, closed.returncode, closed.stdout)
    assert out["clonekit"] == out["runc"]
    # the highest is ls's own directory fd
    assert out["clonekit"] == (0, "handed over\n0\n1\n2\n3\n4\n", 0, "0\n1\n2\n3\n")


# -- terminals -----------------------------------------------------------------------------------

def test_tty_sends_the_pty_master_to_the_console_socket_as_runc(pair, ck, tmp_path):
    """-t -d --console-socket: the receiver gets one fd with runc's "/dev/ptmx" name; the
    process has the container's pty as stdio and controlling terminal, in a session of its own."""
    import array
    import socket

    cid, _ = one(pair, ck, ["/bin/sleep", "1000"])
    path = str(tmp_path / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        pid = detached(ck, cid, tmp_path, "--tty", "--console-socket", path,
                       args=("/bin/sh", "-c", "tty; exec sleep 1000"))
        conn, _ = server.accept()
        with conn:
            fds = array.array("i")
            data, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, raw in ancillary:
        if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
            fds.frombytes(raw[:len(raw) - len(raw) % fds.itemsize])
    assert data == b"/dev/ptmx" and len(fds) == 1
    master = fds[0]
    try:
        out = b""
        while b"\n" not in out:  # what the process wrote on its terminal
            out += os.read(master, 1024)
        assert out == b"/dev/pts/0\r\n"
        # while the master is open (closing it removes the pts entry)
        assert [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1, 2)] == ["/dev/pts/0"] * 3
        stat = read(f"/proc/{pid}/stat")
        fields = stat[stat.rindex(")") + 2:].split()
        assert int(fields[3]) == pid and int(fields[4]) != 0  # session leader with a controlling tty
    finally:
        os.close(master)


@needs_runc
def test_foreground_tty_connects_the_callers_terminal_as_runc(pair):
    """Under `script` (a terminal for the runtime): the same bytes and exit status as runc's."""
    seen = {}
    for name, rt in pair.runtimes.items():
        cid, _ = one(pair, rt, ["/bin/sleep", "1000"])
        cmd = " ".join(rt.command("exec", "-t", cid, "/bin/sh", "-c", "'tty; echo $((6*7)); exit 3'"))
        result = run_cmd(["script", "-qec", cmd, "/dev/null"])
        seen[name] = (result.returncode, result.stdout.replace("\x00", "").replace("^@", ""))
    # read as text: "\r\n" is "\n", and a doubled "\r" shows as an empty line.  runc clears
    # ONLCR on the pty after the program has started, so its first lines are sometimes
    # doubled; clonekit's process clears it before execve: never
    assert seen["clonekit"] == (3, "/dev/pts/0\n42\n")
    assert seen["runc"][0] == 3 and seen["runc"][1].replace("\n\n", "\n") == seen["clonekit"][1]


# -- refusals and errors ------------------------------------------------------------------------

@needs_runc
def test_exec_into_a_stopped_container_is_refused_with_runcs_words(pair):
    said = {}
    for name, rt in pair.runtimes.items():
        cid, bundle = pair.bundle(rt, ["/bin/true"])
        rt.cli("create", "--bundle", bundle, cid, check=True)
        rt.cli("start", cid, check=True)
        rt.wait_status(cid, "stopped")
        result = rt.cli("exec", cid, "/bin/true")
        assert result.returncode != 0
        said[name] = result.stderr
    assert "cannot exec in a stopped container" in said["runc"]
    assert said["clonekit"].strip() == "clonekit exec: cannot exec in a stopped container"


def _pause_verb() -> bool:
    from clonekit.cli import COMMANDS

    return "pause" in COMMANDS


@needs_runc
@pytest.mark.skipif(not _pause_verb(), reason="clonekit has no pause verb yet")
def test_exec_into_a_paused_container_is_refused_unless_ignore_paused(pair):
    said = {}
    for name, rt in pair.runtimes.items():
        cid, _ = one(pair, rt, ["/bin/sleep", "1000"])
        rt.cli("pause", cid, check=True)
        refused = rt.cli("exec", cid, "/bin/true")
        # --ignore-paused: the process joins the frozen group, so it runs once the group thaws
        waiting = subprocess.Popen(rt.command("exec", "--ignore-paused", cid, "/bin/echo", "ran"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            rt.cli("resume", cid, check=True)
            out, _ = waiting.communicate(timeout=30)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
        said[name] = (refused.returncode, refused.stderr, waiting.returncode, out)
    words = "cannot exec in a paused container (use --ignore-paused to override)"
    assert said["runc"][0] != 0 and words in said["runc"][1]
    assert said["clonekit"][:2] == (1, f"clonekit exec: {words}\n")
    assert said["clonekit"][2:] == said["runc"][2:] == (0, "ran\n")


def test_bad_input_is_one_line_and_leaves_nothing(pair, ck):
    cid, init = one(pair, ck, ["/bin/sleep", "1000"])
    before = sorted(json.loads(ck.cli("ps", "--format", "json", cid, check=True).stdout))
    cases = {
        ("exec", cid, "nosuch"): "'nosuch': executable file not found in $PATH",
        ("exec", "--cwd", "/nonexistent", cid, "/bin/true"): "chdir /nonexistent",
        ("exec", "--cap", "CAP_NOPE", cid, "/bin/true"): "--cap 'CAP_NOPE' is not a capability",
        ("exec", "--user", "root", cid, "/bin/true"): "--user 'root': give numeric ids",
        ("exec", cid): "exec needs a command to run",
        ("exec", "--console-socket", "/nonexistent", cid, "/bin/true"):
            "cannot use console socket if clonekit will not detach or allocate tty",
        ("exec", "--detach", "--tty", cid, "/bin/true"):
            "cannot allocate tty if clonekit will detach without setting console socket",
        ("exec", "no-such-container", "/bin/true"): "does not exist",
        ("exec", "--process", "/nonexistent.json", cid): "--process /nonexistent.json: cannot read it",
    }
    for argv, words in cases.items():
        result = ck.cli(*argv)
        assert result.returncode == 1, (argv, result.stderr)
        assert words in result.stderr and result.stderr.count("\n") == 1, (argv, result.stderr)
        assert "Traceback" not in result.stderr
    after = sorted(json.loads(ck.cli("ps", "--format", "json", cid, check=True).stdout))
    assert before == after == [init]


def test_fast_parser_reads_exec_as_argparse_does():
    from clonekit.cli import build_parser
    from clonekit.cli.table import fast_parse

    argvs = (
        ["exec", "c1", "/bin/sh", "-c", "echo --env x"],
        ["--root", "/r", "exec", "-e", "A=1", "--env", "B=2", "--cap", "CAP_KILL", "-g", "5", "-g", "6",
         "--user", "1:2", "-d", "--pid-file", "/p", "--preserve-fds", "2", "c1", "ls", "-l"],
        ["exec", "--process", "/p.json", "--ignore-paused", "--no-new-privs", "c1"],
        ["exec", "-t", "--console-socket", "/s", "--cwd", "/tmp", "c1", "top"],
    )
    for argv in argvs:
        fast = fast_parse(argv)
        assert fast is not None, argv
        assert vars(fast) == vars(build_parser("exec").parse_args(argv)), argv


def test_exec_joins_a_user_namespaced_container(pair, ck, tmp_path):
    """A container with its own user namespace: the process is in it (user first), with the
    container's ids."""
    def userns(config):
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]

    cid, init = one(pair, ck, ["/bin/sleep", "1000"], userns)
    pid = detached(ck, cid, tmp_path)
    assert namespaces(pid) == namespaces(init)
    assert os.stat(f"/proc/{pid}").st_uid == 200000
    result = ck.cli("exec", cid, "/bin/sh", "-c", "id -u; cat /proc/self/uid_map")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0", "200000", "65536"]


def test_the_exec_path_stays_off_pythons_costly_modules(pair, ck):
    from test_import_budget import AVOIDED, LAUNCHER

    cid, _ = one(pair, ck, ["/bin/sleep", "1000"], confined)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", LAUNCHER, "--root", ck.root, "exec", cid,
                           "/bin/echo", "ran"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout == "ran\n", proc.stderr
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    assert "clonekit.runtime.exec" in modules and "clonekit.security.confine" in modules
    assert sorted(m for m in AVOIDED if m in modules) == []
