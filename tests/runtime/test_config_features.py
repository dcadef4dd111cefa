"""Config features seen from inside real containers: time offsets, joined namespaces, domainname,
devices, no-pivot, kill --all, annotations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest


def run_out(bundles, args, *edits, extra=()) -> list[str]:
    cid, bundle, _ = bundles.new(args, edit=list(edits))
    return bundles.cli(*extra, "run", "--bundle", bundle, cid).stdout.split()


def test_time_offsets_shift_the_containers_clocks(bundles):
    def offsets(config):
        config["linux"]["namespaces"].append({"type": "time"})
        config["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400 * 400, "nanosecs": 0},
                                          "boottime": {"secs": 86400 * 800, "nanosecs": 0}}

    out = run_out(bundles, ["cat", "/proc/uptime", "/proc/self/timens_offsets"], offsets)
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert abs(float(out[0]) - host - 86400 * 800) < 60   # boottime moved 800 days on
    assert out[2:] == ["monotonic", str(86400 * 400), "0", "boottime", str(86400 * 800), "0"]
    with open("/proc/self/timens_offsets") as f:
        assert f.read().split()[1] == "0"  # ours (the runtime's parent's) untouched


def test_joins_an_existing_network_namespace_by_path(bundles):
    # a process in a network namespace of its own, renamed loopback as the mark
    holder = subprocess.Popen(["unshare", "--net", "sh", "-c",
                               "ip link set lo name ckmark && ip link set ckmark up && exec sleep 30"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(path) == os.readlink("/proc/self/ns/net") and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)

        def join(config):
            config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                             if ns["type"] != "network"] + [{"type": "network", "path": path}]

        out = run_out(bundles, ["sh", "-c", "ls /sys/class/net; readlink /proc/self/ns/net; echo $$"], join)
        assert "ckmark" in out
        assert out[-2] == os.readlink(path)
        assert out[-1] == "1"  # its own pid namespace is still new
    finally:
        holder.kill()
        holder.wait()


def test_domainname_and_annotations(bundles):
    def more(config):
        config["domainname"] = "clonekit.example"
        config["annotations"] = {"org.example.a": "1"}

    cid, bundle, _ = bundles.new(["sh", "-c", "cat /proc/sys/kernel/domainname; sleep 30"], edit=[more])
    bundles.cli("create", "--bundle", bundle, cid)
    assert json.loads(bundles.cli("state", cid).stdout)["annotations"] == {"org.example.a": "1"}
    bundles.cli("delete", "--force", cid)
    assert run_out(bundles, ["cat", "/proc/sys/kernel/domainname"], more) == ["clonekit.example"]


def test_devices_from_the_config_are_made(bundles):
    def fuse(config):
        config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                       "fileMode": 0o600, "uid": 0, "gid": 0}]

    out = run_out(bundles, ["stat", "-c", "%t:%T %a %F", "/dev/fuse"], fuse)
    assert out[0] == "a:e5" and out[1] == "600" and out[2:] == ["character", "special", "file"]


def test_no_pivot_still_confines_the_container(bundles):
    out = run_out(bundles, ["sh", "-c", "ls /; cat /proc/self/mountinfo | wc -l"], extra=())
    cid, bundle, _ = bundles.new(["sh", "-c", "ls / | tr '\\n' ' '"])
    no_pivot = bundles.cli("run", "--no-pivot", "--bundle", bundle, cid).stdout.split()
    assert sorted(no_pivot) == sorted(out[:-1])  # the same root seen either way
    assert "bin" in no_pivot and "home" not in no_pivot


def test_kill_all_signals_every_process_of_the_container(bundles):
    cid, bundle, _ = bundles.new(["sh", "-c", "trap '' TERM; sleep 30 & sleep 30 & wait"])
    bundles.cli("run", "-d", "--bundle", bundle, cid)
    deadline = time.monotonic() + 5
    pids: list[int] = []
    while len(pids) < 3 and time.monotonic() < deadline:
        pids = json.loads(bundles.cli("ps", "--format", "json", cid).stdout)
        time.sleep(0.02)
    assert len(pids) == 3
    bundles.cli("kill", "--all", cid, "KILL")
    deadline = time.monotonic() + 5
    while json.loads(bundles.cli("state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    bundles.cli("delete", cid)


@pytest.mark.parametrize("sig", ["TERM", "SIGTERM", str(int(signal.SIGTERM))])
def test_kill_accepts_signal_names_and_numbers(bundles, sig):
    # pid 1 of a pid namespace ignores signals it has no handler for: give it one
    cid, bundle, _ = bundles.new(["sh", "-c", "trap 'exit 3' TERM; sleep 30 & wait"])
    bundles.cli("run", "-d", "--bundle", bundle, cid)
    bundles.cli("kill", cid, sig)
    deadline = time.monotonic() + 5
    while json.loads(bundles.cli("state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    bundles.cli("delete", cid)


def test_an_unknown_capability_is_refused_by_name_and_debug_is_logged(bundles, tmp_path):
    def caps(config):
        config["process"]["capabilities"] = {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHWON"]}

    cid, bundle, _ = bundles.new(["true"], edit=[caps])
    log = tmp_path / "log.json"
    out = bundles.cli("--debug", "--log", str(log), "--log-format", "json", "run", "--bundle", bundle, cid,
                      check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "$.process.capabilities.effective[0]" in out.stderr and "did you mean 'CAP_CHOWN'" in out.stderr
    levels = [json.loads(line)["level"] for line in log.read_text().splitlines()]
    assert "error" in levels
