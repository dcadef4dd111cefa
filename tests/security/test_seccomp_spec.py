"""linux.seccomp parsed into records: every field checked with its JSON path; runc's refusals
before anything is made; the container process state sent to a seccomp agent."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest
from seccomp_helpers import podman_section

from clonekit.errors import KernelError
from clonekit.runtime.jsonfields import SpecError
from clonekit.runtime.spec_seccomp import parse_seccomp
from clonekit.security import seccomp as sc
from clonekit.security.seccomp import Seccomp, SeccompArg, SeccompRule

ALLOW = "SCMP_ACT_ALLOW"


def with_rule(**rule: object) -> dict[str, object]:
    return {"defaultAction": ALLOW, "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", **rule}]}


def test_a_full_section():
    s = parse_seccomp({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "listenerPath": "/run/agent.sock", "listenerMetadata": "m",
        "syscalls": [
            {"names": ["read", "write"], "action": ALLOW},
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 255, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]},
        ]})
    assert s == Seccomp(
        default_action="SCMP_ACT_ERRNO", default_errno_ret=38,
        architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X32"), flags=("SECCOMP_FILTER_FLAG_LOG",),
        listener_path="/run/agent.sock", listener_metadata="m",
        syscalls=(SeccompRule(("read", "write"), ALLOW), SeccompRule(("mkdir",), "SCMP_ACT_NOTIFY"),
                  SeccompRule(("personality",), "SCMP_ACT_ERRNO", 13,
                              (SeccompArg(0, 8, 0, "SCMP_CMP_EQ"),
                               SeccompArg(1, 255, 3, "SCMP_CMP_MASKED_EQ")))))
    assert s.notifies


def test_absent_and_empty():
    # runc: neither a default action nor rules means no filter at all
    assert parse_seccomp({}) is None and parse_seccomp({"defaultAction": "", "syscalls": []}) is None
    s = parse_seccomp({"defaultAction": ALLOW, "flags": []})
    assert s is not None and s.flags == () and s.listener_path is None
    s = parse_seccomp({"defaultAction": ALLOW, "listenerPath": "", "flags": None})
    assert s is not None and s.listener_path is None and s.flags is None  # "" and null: unset


def test_podman_default_profile_parses():
    s = parse_seccomp(podman_section())
    assert s is not None and s.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    assert sum(len(r.names) for r in s.syscalls) > 400 and s.flags is None


@pytest.mark.parametrize("section, path, words", [
    ([], "$.linux.seccomp", "expected an object"),
    ({"syscalls": [{"names": ["x"], "action": ALLOW}]}, "$.linux.seccomp.defaultAction", "missing"),
    ({"defaultAction": "SCMP_ACT_ALOW"}, "$.linux.seccomp.defaultAction", "did you mean 'SCMP_ACT_ALLOW'"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "$.linux.seccomp.defaultAction", "cannot be the default"),
    ({"defaultAction": ALLOW, "defaultErrnoRet": 1}, "$.linux.seccomp.defaultErrnoRet", "returns no errno"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "$.linux.seccomp.defaultErrnoRet",
     "out of range"),
    ({"defaultAction": ALLOW, "architectures": ["SCMP_ARCH_AMD64"]}, "$.linux.seccomp.architectures[0]",
     "did you mean 'SCMP_ARCH_X86_64'"),
    ({"defaultAction": ALLOW, "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}, "$.linux.seccomp.flags[0]",
     "not a seccomp flag"),
    ({"defaultAction": ALLOW, "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]},
     "$.linux.seccomp.flags[0]", "add an SCMP_ACT_NOTIFY rule"),
    ({"defaultAction": ALLOW, "listenerMetadata": "m"}, "$.linux.seccomp.listenerMetadata",
     "without listenerPath"),
    ({"defaultAction": ALLOW, "listenerPath": "/" + "a" * 120}, "$.linux.seccomp.listenerPath",
     "at most 107"),
    ({"defaultAction": ALLOW, "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "$.linux.seccomp.syscalls[0].action", "listenerPath"),
    ({"defaultAction": ALLOW, "listenerPath": "/a", "syscalls": [{"names": ["read", "write"],
                                                                   "action": "SCMP_ACT_NOTIFY"}]},
     "$.linux.seccomp.syscalls[0].names[1]", "cannot be used for write"),
    ({"defaultAction": ALLOW, "syscalls": [{"action": ALLOW}]}, "$.linux.seccomp.syscalls[0].names",
     "missing"),
    ({"defaultAction": ALLOW, "syscalls": [{"names": [], "action": ALLOW}]},
     "$.linux.seccomp.syscalls[0].names", "at least one"),
    ({"defaultAction": ALLOW, "syscalls": [{"names": [""], "action": ALLOW}]},
     "$.linux.seccomp.syscalls[0].names[0]", "is empty"),
    ({"defaultAction": ALLOW, "syscalls": [{"names": ["x"]}]}, "$.linux.seccomp.syscalls[0].action",
     "missing"),
    (with_rule(errnoRet=4096), "$.linux.seccomp.syscalls[0].errnoRet", "0 to 4095"),
    ({"defaultAction": ALLOW, "syscalls": [{"names": ["x"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]},
     "$.linux.seccomp.syscalls[0].errnoRet", "SCMP_ACT_KILL returns no errno"),
    (with_rule(args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]),
     "$.linux.seccomp.syscalls[0].args[0].index", "out of range"),
    (with_rule(args=[{"index": 0, "op": "SCMP_CMP_EQ"}]), "$.linux.seccomp.syscalls[0].args[0].value",
     "missing"),
    (with_rule(args=[{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}]),
     "$.linux.seccomp.syscalls[0].args[0].value", "out of range"),
    (with_rule(args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQUAL"}]),
     "$.linux.seccomp.syscalls[0].args[0].op", "did you mean 'SCMP_CMP_EQ'"),
])
def test_errors_name_the_field(section, path, words):
    with pytest.raises(SpecError) as info:
        parse_seccomp(section)
    assert info.value.json_path == path and words in info.value.message


# --- the seccomp agent's side ---------------------------------------------------------------------


def test_send_to_listener_sends_the_state_and_the_fd(tmp_path):
    path = str(tmp_path / "agent.sock")
    got: dict[str, object] = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)

        def agent() -> None:
            conn, _ = server.accept()
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
                while chunk := conn.recv(65536):
                    data += chunk
            got["message"], got["fds"] = json.loads(data), fds

        thread = threading.Thread(target=agent)
        thread.start()
        r, w = os.pipe()
        try:
            state = {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b"}
            sc.send_to_listener(path, r, state, "meta")
            thread.join(10)
            (fd,) = got["fds"]  # type: ignore[misc]
            try:
                assert os.fstat(fd).st_ino == os.fstat(r).st_ino  # the same pipe
            finally:
                os.close(fd)
        finally:
            os.close(r)
            os.close(w)
    assert got["message"] == {"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 42, "metadata": "meta",
                              "state": state}


def test_send_to_listener_without_an_agent_says_so(tmp_path):
    with pytest.raises(KernelError) as info:
        sc.send_to_listener(str(tmp_path / "nobody.sock"), 0, {"pid": 1}, "")
    assert "is the seccomp agent running" in str(info.value) and info.value.errno == 2


def test_features_document():
    doc = sc.features()
    assert doc["enabled"] is True and "SCMP_ACT_NOTIFY" in doc["actions"]  # type: ignore[operator]
    assert "SCMP_CMP_MASKED_EQ" in doc["operators"] and "SCMP_ARCH_X32" in doc["archs"]  # type: ignore[operator]
    assert set(doc["supportedFlags"]) <= set(doc["knownFlags"])  # type: ignore[call-overload,arg-type]


def test_parsing_and_records_load_neither_libseccomp_nor_socket():
    """The CLI path: a seccomp section is parsed without loading libseccomp (compile_filter
    loads it), socket (the NOTIFY path only), hashlib (OpenSSL: the cache key uses _blake2),
    json or dataclasses."""
    import subprocess
    import sys

    code = ("import sys; from clonekit.runtime.spec_seccomp import parse_seccomp; "
            "parse_seccomp({'defaultAction': 'SCMP_ACT_ALLOW', 'syscalls': [{'names': ['mkdir'], "
            "'action': 'SCMP_ACT_ERRNO'}]}); "
            "print(sorted(m for m in ('clonekit._seccomp', 'socket', 'hashlib', 'json', 'dataclasses') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
