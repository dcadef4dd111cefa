"""pause / resume, and the answers clients parse: side by side with runc on this machine.

podman and containerd's shim decide by runc's words and exit codes ("container not running" is
"already finished" to the shim; a missing id under `delete --force` is success), and read the
runtime's errors from --log (the shim decodes every JSON line: one time Go cannot parse makes
every error unreadable).  The runtime's own notices must stay out of stderr when --log is given:
under conmon and the shim, stderr is the container's log.

Freezing is observed in the kernel: the freezer files of the container's groups, and the
container's busy process in state D, its CPU time standing still while a CLI call runs.
Deliberate difference: on this hybrid host clonekit freezes the container's cgroup2 group as
well as the v1 freezer (runc 1.1 only the v1 one), so both say the truth.
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime

import pytest
from runtime_helpers import CGROUP_TOP, RUNC, Runtime, run_cmd

from waiting import wait_for

pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt install runc)")

BUSY = ["sh", "-c", "while :; do :; done"]
TRAP = ["sh", "-c", "trap 'exit 3' TERM; while :; do :; done"]
# RFC 3339 (section 5.6) as Go's time.Parse(time.RFC3339Nano, ...) takes it: "Z" or "+hh:mm"
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
LOGRUS_TEXT = re.compile(r'time="([^"]*)" level=(\w+) msg="((?:[^"\\]|\\.)*)"')


# -- what the kernel says --------------------------------------------------------------------

def group_file(cid: str, hierarchy: str, name: str) -> str:
    with open(os.path.join(CGROUP_TOP, hierarchy, "clonekit-test", cid, name)) as f:
        return f.read().strip()


def freezers(cid: str) -> dict[str, str]:
    """The v1 freezer's state and the cgroup2 group's cgroup.freeze / `frozen` event."""
    events = dict(line.split() for line in group_file(cid, "unified", "cgroup.events").splitlines())
    return {"v1": group_file(cid, "freezer", "freezer.state"),
            "v2": group_file(cid, "unified", "cgroup.freeze") + "/" + events["frozen"]}


def stat(pid: int) -> tuple[str, int]:
    """(state letter, utime + stime in ticks) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[11]) + int(fields[12])


def runs_again(pid: int) -> bool:
    before = stat(pid)[1]
    return bool(wait_for(lambda: stat(pid)[1] > before, what=f"pid {pid} to use CPU again"))


def message(rt: Runtime, stderr: str) -> str:
    """The error text: runc's logrus line without --log (msg="..."), clonekit's line as is."""
    if rt.name == "runc":
        found = LOGRUS_TEXT.search(stderr)
        assert found, stderr
        return found.group(3)
    return stderr.strip()


def same_words(pair, answers: dict[str, dict[str, tuple[int, str]]], ids: dict[str, str]) -> None:
    """Every exit code equal, and runc's text (its id replaced by ours) inside clonekit's."""
    ours, theirs = answers["clonekit"], answers["runc"]
    assert {k: v[0] for k, v in ours.items()} == {k: v[0] for k, v in theirs.items()}
    for what, (_, text) in theirs.items():
        if text == "container does not exist":  # ours names the id and the state dir
            text = "does not exist"
        assert text.replace(ids["runc"], ids["clonekit"]) in ours[what][1], (what, text, ours[what][1])
        assert "Traceback" not in ours[what][1]


# -- pause / resume ---------------------------------------------------------------------------

def test_pause_freezes_every_process_and_resume_thaws_like_runc(pair):
    seen, answers, ids = {}, {}, {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, BUSY)
        ids[rt.name] = cid
        rt.cli("run", "-d", "--bundle", bundle, cid, check=True)
        pid = rt.wait_status(cid, "running")["pid"]
        runs_again(pid)

        paused = rt.cli("pause", cid)
        doc = rt.state(cid)
        frozen = freezers(cid)
        letter, ticks = stat(pid)
        said = {what: rt.cli(*argv) for what, argv in (
            ("pause", ("pause", cid)), ("start", ("start", cid)), ("delete", ("delete", cid)))}
        still = stat(pid)  # a CLI call later: a running busy loop would have used CPU meanwhile
        assert still == (letter, ticks), rt.name

        resumed = rt.cli("resume", cid)
        after = rt.state(cid)["status"]
        thawed = freezers(cid)
        assert runs_again(pid)
        said["resume"] = rt.cli("resume", cid)

        rt.cli("kill", cid, "KILL", check=True)
        rt.wait_status(cid, "stopped")
        said["pause-stopped"] = rt.cli("pause", cid)
        said["resume-stopped"] = rt.cli("resume", cid)
        rt.cli("delete", cid, check=True)
        said["pause-missing"] = rt.cli("pause", cid)
        said["resume-missing"] = rt.cli("resume", cid)
        answers[rt.name] = {what: (r.returncode, message(rt, r.stderr)) for what, r in said.items()}
        seen[rt.name] = {"codes": [paused.returncode, resumed.returncode, paused.stdout, resumed.stdout],
                         "state": [doc["status"], doc["pid"] == pid, after], "process": letter,
                         "v1": [frozen["v1"], thawed["v1"]]}
        if rt.name == "clonekit":  # and its cgroup2 group, which runc 1.1 leaves alone
            assert frozen["v2"] == "1/1" and thawed["v2"] == "0/0"
    assert seen["clonekit"] == seen["runc"] == {
        "codes": [0, 0, "", ""], "state": ["paused", True, "running"], "process": "D",
        "v1": ["FROZEN", "THAWED"]}
    same_words(pair, answers, ids)
    assert answers["runc"]["pause"] == (1, "container not running")
    assert answers["runc"]["start"] == (1, "cannot start a container in the paused state")
    assert answers["runc"]["resume"] == (1, "container not paused")
    assert answers["runc"]["pause-missing"][1] == "container does not exist"


def test_a_created_container_can_be_paused_and_resumed_like_runc(pair):
    seen = {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, ["true"])
        rt.cli("create", "--bundle", bundle, cid, check=True)
        rt.cli("pause", cid, check=True)
        paused = rt.state(cid)["status"]
        refused = rt.cli("start", cid).returncode
        rt.cli("resume", cid, check=True)
        seen[rt.name] = [paused, refused, rt.state(cid)["status"], freezers(cid)["v1"]]
        rt.cli("delete", cid, check=True)  # a created container: delete kills it, no --force
    assert seen["clonekit"] == seen["runc"] == ["paused", 1, "created", "THAWED"]


def test_kill_of_a_paused_container_is_delivered_as_under_runc(pair):
    """TERM waits for the thaw; KILL thaws (the v1 freezer holds even a killed task); --all
    signals and thaws, as runc's freeze/signal/thaw does."""
    seen = {}
    for rt in pair.each():
        got = {}
        for how in ("TERM", "KILL", "all"):
            cid, bundle = pair.bundle(rt, TRAP)
            rt.cli("run", "-d", "--bundle", bundle, cid, check=True)
            pid = rt.wait_status(cid, "running")["pid"]
            rt.cli("pause", cid, check=True)
            argv = ("kill", "--all", cid, "TERM") if how == "all" else ("kill", cid, how)
            code = rt.cli(*argv).returncode
            if how == "TERM":
                pending = rt.state(cid)["status"]  # frozen: the trap cannot run yet
                assert stat(pid)[0] == "D"
                rt.cli("resume", cid, check=True)
            else:
                pending = "-"
            rt.wait_status(cid, "stopped")
            got[how] = [code, pending, freezers(cid)["v1"]]
            rt.cli("delete", cid, check=True)
        seen[rt.name] = got
    assert seen["clonekit"] == seen["runc"] == {
        "TERM": [0, "paused", "THAWED"], "KILL": [0, "-", "THAWED"], "all": [0, "-", "THAWED"]}


def test_delete_force_of_a_paused_container_kills_everything_and_leaves_nothing_frozen(pair):
    seen = {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, ["sh", "-c", "sleep 1000 & while :; do :; done"])
        rt.cli("run", "-d", "--bundle", bundle, cid, check=True)
        members = wait_for(lambda cid=cid: len(_procs(cid)) == 2 and _procs(cid), what="two processes")
        rt.cli("pause", cid, check=True)
        assert all(stat(p)[0] == "D" for p in members)
        code = rt.cli("delete", "--force", cid).returncode
        gone = all(_gone(p) for p in members)
        seen[rt.name] = [code, gone, os.path.exists(os.path.join(rt.root, cid))]
        if rt.name == "clonekit":
            assert not os.path.exists(os.path.join(CGROUP_TOP, "freezer", "clonekit-test", cid))
    assert seen["clonekit"] == seen["runc"] == [0, True, False]


def _procs(cid: str) -> list[int]:
    return [int(p) for p in group_file(cid, "freezer", "cgroup.procs").split()]


def _gone(pid: int) -> bool:
    try:
        return stat(pid)[0] in ("Z", "X")
    except FileNotFoundError:
        return True


# -- the answers clients parse ----------------------------------------------------------------

def test_answers_for_stopped_and_missing_containers_like_runc(pair):
    answers, ids = {}, {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, ["true"])
        ids[rt.name] = cid
        rt.cli("run", "-d", "--bundle", bundle, cid, check=True)
        rt.wait_status(cid, "stopped")
        said = {"kill": rt.cli("kill", cid), "kill-KILL": rt.cli("kill", cid, "KILL"),
                "kill-all": rt.cli("kill", "--all", cid), "kill-all-KILL": rt.cli("kill", "-a", cid, "9"),
                "delete": rt.cli("delete", cid)}
        for verb in ("state", "kill", "delete", "start"):
            said[f"{verb}-missing"] = rt.cli(verb, cid)
        said["delete-force-missing"] = rt.cli("delete", "--force", cid)
        said["delete-f-missing"] = rt.cli("delete", "-f", "never-made")
        answers[rt.name] = {what: (r.returncode, message(rt, r.stderr) if r.returncode else r.stderr)
                            for what, r in said.items()}
    runc = answers["runc"]
    assert runc["kill"] == runc["kill-KILL"] == (1, "container not running")
    assert runc["kill-all"] == runc["kill-all-KILL"] == runc["delete"] == (0, "")
    assert runc["delete-force-missing"] == runc["delete-f-missing"] == (0, "")
    assert all(runc[f"{verb}-missing"] == (1, "container does not exist")
               for verb in ("state", "kill", "delete", "start"))
    ours = answers["clonekit"]
    assert {k: v[0] for k, v in ours.items()} == {k: v[0] for k, v in runc.items()}
    assert "container not running" in ours["kill"][1] and "container not running" in ours["kill-KILL"][1]
    assert all(ours[k] == (0, "") for k in ("kill-all", "kill-all-KILL", "delete", "delete-force-missing",
                                            "delete-f-missing"))
    # podman and the shim look for "does not exist" (runc's exact words carry no id: ours names it)
    assert all("does not exist" in ours[f"{verb}-missing"][1]
               for verb in ("state", "kill", "delete", "start"))


# -- where the runtime's lines go -------------------------------------------------------------

def _deny_all_unmanaged(config):
    """A config whose `create` has a notice to give: runc's deny-all device rule with cgroups
    off (--cgroup-manager disabled) cannot be enforced."""
    config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}


def test_notices_go_to_the_log_never_to_the_containers_stderr(pair, tmp_path):
    rt = pair.runtimes["clonekit"]
    cid, bundle = pair.bundle(rt, ["sh", "-c", "echo out; echo err >&2"], (_deny_all_unmanaged,))
    plain = rt.cli("--cgroup-manager", "disabled", "run", "--bundle", bundle, cid)
    assert plain.returncode == 0 and plain.stdout == "out\n"
    assert sorted(plain.stderr.splitlines(), key=len) == ["err", next(  # without --log: on stderr
        line for line in plain.stderr.splitlines() if line.startswith("clonekit: notice: device rules"))]
    for fmt in ("text", "json"):
        log = tmp_path / f"log.{fmt}"
        cid, bundle = pair.bundle(rt, ["sh", "-c", "echo out; echo err >&2"], (_deny_all_unmanaged,))
        logged = rt.cli("--log", str(log), "--log-format", fmt, "--cgroup-manager", "disabled", "--debug",
                        "run", "--bundle", bundle, cid)
        assert (logged.returncode, logged.stdout, logged.stderr) == (0, "out\n", "err\n"), fmt
        lines = _parse_log(log.read_text(), fmt)
        assert [line["level"] for line in lines if line["level"] != "debug"] == ["info"]  # logrus' level
        assert "device rules not enforced" in next(line["msg"] for line in lines if line["level"] == "info")
        assert any(cid in line["msg"] for line in lines if line["level"] == "debug")  # --debug: the log too


def test_errors_go_to_stderr_and_the_log_like_runc(pair, tmp_path):
    """runc with --log prints the error on stderr as well (podman shows it; the shim reads the
    log): the same lines, the same formats, parsed as runc's are."""
    seen = {}
    for rt in pair.each():
        got = {}
        for fmt in ("text", "json"):
            log = tmp_path / f"{rt.name}.{fmt}"
            said = rt.cli("--log", str(log), "--log-format", fmt, "kill", "no-such-id")
            lines = _parse_log(log.read_text(), fmt)
            got[fmt] = [said.returncode, "does not exist" in said.stderr, len(said.stderr.splitlines()),
                        [(line["level"], "does not exist" in line["msg"]) for line in lines],
                        sorted(lines[0]) if fmt == "json" else None]
        seen[rt.name] = got
    assert seen["clonekit"] == seen["runc"]
    assert seen["runc"]["json"] == [1, True, 1, [("error", True)], ["level", "msg", "time"]]


def test_the_json_log_time_is_rfc3339_as_go_parses_it(pair, tmp_path):
    """Every line (errors, notices, debug) decodes, and its time is RFC 3339 -- "Z" or
    "+hh:mm", never strftime's "+0000", which Go's time.Parse refuses."""
    rt = pair.runtimes["clonekit"]
    log = tmp_path / "log.json"
    cid, bundle = pair.bundle(rt, ["true"], (_deny_all_unmanaged,))
    rt.cli("--log", str(log), "--log-format", "json", "--debug", "--cgroup-manager", "disabled",
           "run", "--bundle", bundle, cid, check=True)
    rt.cli("--log", str(log), "--log-format", "json", "kill", cid)
    lines = _parse_log(log.read_text(), "json")
    assert {line["level"] for line in lines} == {"debug", "info", "error"}
    runc_log = tmp_path / "runc.json"
    pair.runtimes["runc"].cli("--log", str(runc_log), "--log-format", "json", "state", "no-such-id")
    for line in lines + _parse_log(runc_log.read_text(), "json"):  # the check accepts runc's own
        assert RFC3339.fullmatch(line["time"]), line
    stamps = [datetime.fromisoformat(_micro(line["time"])) for line in lines]
    assert stamps == sorted(stamps) and all(s.utcoffset() is not None for s in stamps)


def test_text_log_quotes_messages_as_logrus_does(pair, tmp_path):
    rt = pair.runtimes["clonekit"]
    log = tmp_path / "log.txt"
    said = rt.cli("--log", str(log), "kill", 'bad"id\\x')
    assert said.returncode == 1 and 'bad"id' in said.stderr
    (line,) = _parse_log(log.read_text(), "text")
    assert line["level"] == "error" and "invalid container id" in line["msg"]
    assert "'bad\"id\\\\x'" in line["msg"]


def _micro(stamp: str) -> str:
    """An RFC 3339 time Python 3.10's fromisoformat also takes: microseconds, "+00:00"."""
    head, _, tail = stamp.partition(".")
    if not tail:
        return stamp.replace("Z", "+00:00")
    digits = re.match(r"\d+", tail).group(0)  # type: ignore[union-attr]
    zone = tail[len(digits):]
    return f"{head}.{digits[:6].ljust(6, '0')}{'+00:00' if zone == 'Z' else zone}"


def _parse_log(text: str, fmt: str) -> list[dict[str, str]]:
    """Every line of a runc/clonekit log, strictly: json objects, or logrus text lines."""
    lines = []
    for raw in text.splitlines():
        if fmt == "json":
            lines.append(json.loads(raw))
            continue
        found = LOGRUS_TEXT.fullmatch(raw)
        assert found, raw
        msg = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), found.group(3))
        lines.append({"time": found.group(1), "level": found.group(2), "msg": msg})
    return lines


def test_pause_without_a_cgroup_is_refused_in_one_line(pair):
    rt = pair.runtimes["clonekit"]
    cid, bundle = pair.bundle(rt, ["sleep", "100"])
    rt.cli("--cgroup-manager", "disabled", "run", "-d", "--bundle", bundle, cid, check=True)
    said = rt.cli("pause", cid)
    assert said.returncode == 1 and len(said.stderr.splitlines()) == 1
    assert "has no cgroup" in said.stderr and "Traceback" not in said.stderr
    assert rt.state(cid)["status"] == "running"
    rt.cli("delete", "--force", cid, check=True)


def test_the_lifecycle_verbs_know_pause_and_resume():
    from clonekit.cli import build_parser

    for verb in ("pause", "resume"):
        out = run_cmd([sys.executable, "-m", "clonekit", verb, "--help"])
        assert out.returncode == 0 and "CONTAINER_ID" in out.stdout
        assert build_parser(verb).parse_args([verb, "x"]).container_id == "x"


# -- the Cgroup API underneath ------------------------------------------------------------------

def test_cgroup_freeze_and_thaw_on_both_freezers_and_an_ancestor_does_not_count(tmp_path):
    """Cgroup.freeze/thaw/frozen on a real group with a busy child; a group frozen only through
    its parent is not "paused" (v1 freezer.self_freezing, as runc reads it)."""
    import subprocess
    import uuid

    from clonekit.cgroups import Cgroup

    name = f"ck-{uuid.uuid4().hex[:10]}"
    parent = Cgroup.create(f"/clonekit-test/{name}", container_id=name)
    child = Cgroup.create(f"/clonekit-test/{name}/inner", container_id=name)
    busy = subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"])
    try:
        child.add(busy.pid)
        runs_again(busy.pid)
        child.freeze()
        assert child.frozen() and freezers(f"{name}/inner") == {"v1": "FROZEN", "v2": "1/1"}
        assert stat(busy.pid)[0] == "D" and not parent.frozen()
        child.freeze()  # again: nothing changes, no error
        child.thaw()
        assert not child.frozen() and freezers(f"{name}/inner") == {"v1": "THAWED", "v2": "0/0"}
        assert runs_again(busy.pid)

        parent.freeze()  # the child is frozen too, but not by itself
        assert stat(busy.pid)[0] == "D" and parent.frozen() and not child.frozen()
        parent.thaw()
        assert runs_again(busy.pid)
    finally:
        busy.kill()
        busy.wait()
        child.remove()
        parent.remove()
    assert not child.frozen()  # a removed group is not frozen (and thaw has nothing to do)
    child.thaw()
