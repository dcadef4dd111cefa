"""config.json -> Plan: exact plans for valid configs, SpecError with the right JSON path for every
kind of bad input, namespace files checked on the real kernel, mount options checked against the
kernel's own reading of them (/proc/self/mountinfo)."""

from __future__ import annotations

import copy
import ctypes
import json
import os
import re
import signal
import subprocess
import time

import pytest

from clonekit.errors import UsageError
from clonekit.runtime import options as o
from clonekit.runtime.plan import (
    DevicePlan,
    Hook,
    Hooks,
    IdMapping,
    MountPlan,
    NamespacePlan,
    Plan,
    ProcessPlan,
    User,
)
from clonekit.runtime.spec import (
    SpecError,
    load_config,
    load_plan,
    parse_json,
    plan_from_dict,
    sysctl_file,
)
from clonekit.security.caps import Capabilities
from clonekit.security.confine import Confinement


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "data").mkdir()
    return tmp_path


def minimal() -> dict:
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/"},
        "linux": {"namespaces": [{"type": "mount"}]},
    }


def full() -> dict:
    ids = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs", "readonly": True},
        "process": {
            "args": ["/bin/sh", "-c", "true"], "env": ["PATH=/bin", "A=b=c"], "cwd": "/tmp/../work/",
            "user": {"uid": 1000, "gid": 1000, "umask": 0o22, "additionalGids": [5, 100]},
            "terminal": False, "noNewPrivileges": True,
        },
        "hostname": "box",
        "domainname": "example.org",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev/shm/", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/data", "type": "bind", "source": "data",
             "options": ["rbind", "rprivate", "ro", "rro", "rnoatime"]},
            {"destination": "/opt//x", "source": "/tmp", "options": ["bind", "nosuid", "rw", "ro", "rw"]},
        ],
        "hooks": {
            "createRuntime": [{"path": "/bin/true", "args": ["true", "x"], "env": ["K=V"], "timeout": 5}],
            "poststop": [{"path": "/bin/echo"}],
        },
        "annotations": {"org.example.key": "value"},
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user",
                                                  "cgroup", "time")],
            "uidMappings": ids,
            "gidMappings": copy.deepcopy(ids),
            "devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600,
                 "uid": 1000, "gid": 5},
                {"path": "/dev/myfifo", "type": "p"},
            ],
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys/"],
            "rootfsPropagation": "rslave",
            "sysctl": {"net.ipv4.ip_forward": "1", "kernel/shmmax": "1000000",
                       "net/ipv4/conf/eth0.100/forwarding": "1", "kernel.domainname": "x"},
            "timeOffsets": {"monotonic": {"secs": 86400, "nanosecs": 5}, "boottime": {"secs": -10}},
            "cgroupsPath": "/clonekit-test/c1",
        },
    }


# ------------------------------------------------------------------------------------------
# valid configs -> the exact plan

def test_minimal_plan(bundle):
    plan = plan_from_dict(minimal(), str(bundle))
    assert plan == Plan(oci_version="1.2.0", root=str(bundle / "rootfs"),
                        # no capabilities object: none at all (as runc)
                        process=ProcessPlan(args=("sh",),
                                            confinement=Confinement(capabilities=Capabilities())),
                        namespaces=(NamespacePlan("mount"),))


def test_full_plan(bundle):
    plan = plan_from_dict(full(), str(bundle))
    ids = (IdMapping(0, 100000, 65536),)
    expected = Plan(
        oci_version="1.2.0", root=str(bundle / "rootfs"), root_readonly=True,
        process=ProcessPlan(args=("/bin/sh", "-c", "true"), env=("PATH=/bin", "A=b=c"), cwd="/work",
                            user=User(1000, 1000, 0o22, (5, 100)), terminal=False,
                            no_new_privileges=True,
                            confinement=Confinement(capabilities=Capabilities(), no_new_privileges=True)),
        hostname="box", domainname="example.org",
        mounts=(
            MountPlan("/proc", "proc", "proc"),
            MountPlan("/dev/shm", "tmpfs", "shm", flags=o.MS_NOSUID | o.MS_NOEXEC | o.MS_NODEV,
                      data="mode=1777,size=65536k",
                      options=("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
            MountPlan("/data", "bind", str(bundle / "data"), flags=o.MS_BIND | o.MS_REC | o.MS_RDONLY,
                      propagation=o.MS_PRIVATE | o.MS_REC,
                      recursive_set=o.MOUNT_ATTR_RDONLY | o.MOUNT_ATTR_NOATIME,
                      recursive_clear=o.MOUNT_ATTR__ATIME,
                      options=("rbind", "rprivate", "ro", "rro", "rnoatime")),
            MountPlan("/opt/x", "bind", "/tmp", flags=o.MS_BIND | o.MS_NOSUID, clear_flags=o.MS_RDONLY,
                      options=("bind", "nosuid", "rw", "ro", "rw")),
        ),
        namespaces=tuple(NamespacePlan(t) for t in ("pid", "network", "ipc", "uts", "mount", "user",
                                                     "cgroup", "time")),
        uid_mappings=ids, gid_mappings=ids,
        devices=(DevicePlan("/dev/fuse", "c", 10, 229, 0o600, 1000, 5), DevicePlan("/dev/myfifo", "p", 0, 0)),
        masked_paths=("/proc/kcore",), readonly_paths=("/proc/sys",),
        rootfs_propagation=o.MS_SLAVE | o.MS_REC,
        sysctl=(("net.ipv4.ip_forward", "1"), ("kernel.shmmax", "1000000"),
                ("net.ipv4.conf.eth0/100.forwarding", "1"), ("kernel.domainname", "x")),
        time_offsets=(("monotonic", 86400, 5), ("boottime", -10, 0)),
        cgroups_path="/clonekit-test/c1",
        annotations=(("org.example.key", "value"),),
        hooks=Hooks(create_runtime=(Hook("/bin/true", ("true", "x"), ("K=V",), 5.0),),
                    poststop=(Hook("/bin/echo"),)),
    )
    assert plan == expected
    assert plan.new_namespace_flags == sum(ns.flag for ns in expected.namespaces)


def test_sysctl_names_map_to_files_that_exist():
    plan_names = ["net.ipv4.ip_forward", "kernel.shmmax", "net.ipv4.conf.lo.forwarding", "fs.mqueue.msg_max"]
    for name in plan_names:
        assert os.path.isfile(sysctl_file(name)), name
    assert sysctl_file("net.ipv4.conf.eth0/100.forwarding") == "/proc/sys/net/ipv4/conf/eth0.100/forwarding"


def test_load_plan_reads_the_bundle(bundle):
    (bundle / "config.json").write_text(json.dumps(full()))
    assert load_plan(str(bundle)) == plan_from_dict(full(), str(bundle))
    other = bundle / "other.json"
    other.write_text(json.dumps(minimal()))
    assert load_plan(str(bundle), str(other)).process == \
        ProcessPlan(args=("sh",), confinement=Confinement(capabilities=Capabilities()))
    assert load_config(str(bundle)) == full() and load_config("unused", str(other)) == minimal()


def test_symlinked_rootfs_is_fine_and_resolved(bundle, tmp_path_factory):
    real = tmp_path_factory.mktemp("real-rootfs")
    os.symlink(real, bundle / "link")
    doc = minimal()
    doc["root"]["path"] = "link"
    assert plan_from_dict(doc, str(bundle)).root == os.path.realpath(real)


def test_absolute_rootfs_and_relative_bundle(bundle, monkeypatch):
    doc = minimal()
    doc["root"]["path"] = str(bundle / "rootfs")
    assert plan_from_dict(doc, "/nonexistent-bundle").root == str(bundle / "rootfs")
    monkeypatch.chdir(bundle.parent)
    assert plan_from_dict(minimal(), bundle.name).root == str(bundle / "rootfs")


def test_null_reads_as_absent(bundle):
    doc = minimal()
    doc["hostname"] = None
    doc["mounts"] = None
    doc["process"]["env"] = None
    assert plan_from_dict(doc, str(bundle)) == plan_from_dict(minimal(), str(bundle))


def test_empty_hostname_and_rootfs_propagation_mean_unset(bundle):
    doc = minimal()
    doc["hostname"] = ""
    doc["linux"]["rootfsPropagation"] = ""
    plan = plan_from_dict(doc, str(bundle))
    assert plan.hostname is None and plan.rootfs_propagation == 0


def test_no_process_is_allowed(bundle):
    doc = minimal()
    del doc["process"]
    assert plan_from_dict(doc, str(bundle)).process is None


def test_runc_1_0_configs_are_accepted(bundle):
    doc = minimal()
    doc["ociVersion"] = "1.0.2-dev"
    assert plan_from_dict(doc, str(bundle)).oci_version == "1.0.2-dev"


# ------------------------------------------------------------------------------------------
# every error class -> SpecError naming the JSON path

def _set(path: list, value):
    def edit(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _del(path: list):
    def edit(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


ERRORS = [
    # (edit of full(), json_path, words the message must contain)
    (_set(["ociVersion"], 1.2), "$.ociVersion", "expected a string"),
    (_set(["ociVersion"], "1.2"), "$.ociVersion", "SemVer"),
    (_set(["ociVersion"], "2.0.0"), "$.ociVersion", "1.x"),
    (_del(["ociVersion"]), "$.ociVersion", "missing"),
    (_del(["root"]), "$.root", "missing"),
    (_set(["root"], "rootfs"), "$.root", "expected an object"),
    (_set(["root", "path"], 5), "$.root.path", "expected a string"),
    (_set(["root", "path"], ""), "$.root.path", "empty"),
    (_set(["root", "path"], "nope"), "$.root.path", "does not exist"),
    (_set(["root", "readonly"], "yes"), "$.root.readonly", "expected a boolean"),
    (_set(["process"], []), "$.process", "expected an object"),
    (_set(["process", "args"], []), "$.process.args", "is empty"),
    (_del(["process", "args"]), "$.process.args", "missing"),
    (_set(["process", "args"], "sh"), "$.process.args", "expected an array"),
    (_set(["process", "args", 1], 7), "$.process.args[1]", "expected a string"),
    (_set(["process", "args", 0], ""), "$.process.args[0]", "empty"),
    (_set(["process", "args", 2], "a\0b"), "$.process.args[2]", "NUL"),
    (_set(["process", "cwd"], "work"), "$.process.cwd", "not absolute"),
    (_del(["process", "cwd"]), "$.process.cwd", "missing"),
    (_set(["process", "env", 1], "NOEQUALS"), "$.process.env[1]", "NAME=VALUE"),
    (_set(["process", "env", 0], "=x"), "$.process.env[0]", "NAME=VALUE"),
    (_set(["process", "terminal"], 1), "$.process.terminal", "expected a boolean"),
    (_set(["process", "user", "uid"], -1), "$.process.user.uid", "out of range"),
    (_set(["process", "user", "uid"], 1.0), "$.process.user.uid", "unsigned 32-bit"),
    (_set(["process", "user", "gid"], True), "$.process.user.gid", "unsigned 32-bit"),
    (_set(["process", "user", "gid"], 2**32), "$.process.user.gid", "out of range"),
    (_set(["process", "user", "umask"], 0o1000), "$.process.user.umask", "out of range"),
    (_set(["process", "user", "additionalGids", 1], "100"), "$.process.user.additionalGids[1]",
     "unsigned 32-bit"),
    (_set(["process", "capabilities"], []), "$.process.capabilities", "expected an object"),
    (_set(["process", "oomScoreAdj"], True), "$.process.oomScoreAdj", "expected an integer"),
    (_set(["hostname"], 5), "$.hostname", "expected a string"),
    (_set(["hostname"], "h" * 65), "$.hostname", "64 bytes"),
    (_set(["domainname"], "d" * 65), "$.domainname", "64 bytes"),
    (_set(["mounts"], {}), "$.mounts", "expected an array"),
    (_set(["mounts", 1], "tmpfs"), "$.mounts[1]", "expected an object"),
    (_set(["mounts", 2, "destination"], "data"), "$.mounts[2].destination", "not absolute"),
    (_set(["mounts", 2, "destination"], "/a/../../etc"), "$.mounts[2].destination", '".."'),
    (_del(["mounts", 2, "destination"]), "$.mounts[2].destination", "missing"),
    (_set(["mounts", 1, "options"], "ro"), "$.mounts[1].options", "expected an array"),
    (_set(["mounts", 1, "options", 2], 3), "$.mounts[1].options[2]", "expected a string"),
    (_set(["mounts", 1, "options", 2], ""), "$.mounts[1].options[2]", "empty option"),
    (_del(["mounts", 2, "source"]), "$.mounts[2].source", "bind mount needs"),
    (_del(["mounts", 1, "type"]), "$.mounts[1].type", "filesystem type"),
    (_set(["mounts", 1, "type"], "none"), "$.mounts[1].type", "filesystem type"),
    (_set(["hooks"], []), "$.hooks", "expected an object"),
    (_set(["hooks", "createRuntime", 0, "path"], "true"), "$.hooks.createRuntime[0].path", "not absolute"),
    (_del(["hooks", "createRuntime", 0, "path"]), "$.hooks.createRuntime[0].path", "missing"),
    (_set(["hooks", "createRuntime", 0, "timeout"], 0), "$.hooks.createRuntime[0].timeout", "out of range"),
    (_set(["hooks", "createRuntime", 0, "timeout"], 1.5), "$.hooks.createRuntime[0].timeout",
     "whole seconds"),
    (_set(["hooks", "createRuntime", 0, "env", 0], "K"), "$.hooks.createRuntime[0].env[0]", "NAME=VALUE"),
    (_set(["hooks", "poststop", 0, "args"], "x"), "$.hooks.poststop[0].args", "expected an array"),
    (_set(["annotations"], []), "$.annotations", "expected an object"),
    (_set(["annotations", "org.example.n"], 1), '$.annotations["org.example.n"]', "expected a string"),
    (_set(["annotations", ""], "x"), "$.annotations", "empty key"),
    (_set(["linux"], []), "$.linux", "expected an object"),
    (_set(["linux", "resources"], []), "$.linux.resources", "expected an object"),
    (_set(["linux", "namespaces"], {}), "$.linux.namespaces", "expected an array"),
    (_set(["linux", "namespaces", 2], {"type": "net"}), "$.linux.namespaces[2].type", "not a namespace type"),
    (_set(["linux", "namespaces", 2], {"type": "pid"}), "$.linux.namespaces[2].type", "listed twice"),
    (_set(["linux", "namespaces", 2], {}), "$.linux.namespaces[2].type", "missing"),
    (_set(["linux", "namespaces", 2, "path"], "ns/ipc"), "$.linux.namespaces[2].path", "not absolute"),
    (_set(["linux", "namespaces", 2, "path"], "/nonexistent/ns"), "$.linux.namespaces[2].path",
     "No such file"),
    (_set(["linux", "namespaces", 2, "path"], "/proc/self/ns"), "$.linux.namespaces[2].path",
     "not a namespace file"),
    (_set(["linux", "namespaces", 2, "path"], "/proc/self/ns/uts"), "$.linux.namespaces[2].path",
     "is a uts namespace, not a ipc namespace"),
    (_set(["linux", "namespaces", 2, "path"], "/etc/hostname"), "$.linux.namespaces[2].path",
     "NS_GET_NSTYPE"),
    (_set(["linux", "namespaces", 4], {"type": "cgroup"}), "$.linux.namespaces[6].type", "listed twice"),
    (_set(["linux", "uidMappings", 0, "size"], 0), "$.linux.uidMappings[0].size", "out of range"),
    (_set(["linux", "uidMappings", 0, "hostID"], 2**32 - 10), "$.linux.uidMappings[0].size", "largest id"),
    (_del(["linux", "gidMappings", 0, "hostID"]), "$.linux.gidMappings[0].hostID", "missing"),
    (lambda d: d["linux"]["uidMappings"].append({"containerID": 100, "hostID": 0, "size": 1}),
     "$.linux.uidMappings[1].containerID", "overlap"),
    (lambda d: d["linux"]["uidMappings"].append({"containerID": 70000, "hostID": 100001, "size": 1}),
     "$.linux.uidMappings[1].hostID", "overlap"),
    (_set(["linux", "uidMappings"], [{"containerID": i, "hostID": i, "size": 1} for i in range(341)]),
     "$.linux.uidMappings", "340"),
    (_del(["linux", "uidMappings"]), "$.process.user.uid", "no uidMappings, so no uid exists in it"),
    (_set(["linux", "devices", 0, "type"], "x"), "$.linux.devices[0].type", "not a device type"),
    (_set(["linux", "devices", 0, "path"], "dev/fuse"), "$.linux.devices[0].path", "not absolute"),
    (_set(["linux", "devices", 1, "path"], "/dev/fuse"), "$.linux.devices[1].path", "listed twice"),
    (_del(["linux", "devices", 0, "major"]), "$.linux.devices[0].major", "missing"),
    (_set(["linux", "devices", 0, "minor"], 1 << 20), "$.linux.devices[0].minor", "out of range"),
    (_set(["linux", "devices", 0, "major"], "10"), "$.linux.devices[0].major", "major number"),
    (_set(["linux", "devices", 0, "fileMode"], -1), "$.linux.devices[0].fileMode", "out of range"),
    (_set(["linux", "maskedPaths", 0], "proc/kcore"), "$.linux.maskedPaths[0]", "not absolute"),
    (_set(["linux", "readonlyPaths"], "/proc/sys"), "$.linux.readonlyPaths", "expected an array"),
    (_set(["linux", "rootfsPropagation"], "recursive"), "$.linux.rootfsPropagation", "not a propagation"),
    (_set(["linux", "sysctl"], []), "$.linux.sysctl", "expected an object"),
    (_set(["linux", "sysctl", "net.core.somaxconn"], 1024), '$.linux.sysctl["net.core.somaxconn"]',
     "expected a string"),
    (_set(["linux", "sysctl", "vm.swappiness"], "1"), '$.linux.sysctl["vm.swappiness"]', "not namespaced"),
    (_set(["linux", "sysctl", "kernel.hostname"], "x"), '$.linux.sysctl["kernel.hostname"]', "conflicts"),
    (_set(["linux", "sysctl", "net/../../x"], "1"), '$.linux.sysctl["net/../../x"]', "not a sysctl name"),
    (_set(["linux", "sysctl", "net..x"], "1"), '$.linux.sysctl["net..x"]', "not a sysctl name"),
    (_set(["linux", "sysctl", "net/ipv4/ip_forward"], "1"), '$.linux.sysctl["net/ipv4/ip_forward"]',
     "given twice"),
    (_set(["linux", "timeOffsets", "realtime"], {"secs": 1}), '$.linux.timeOffsets.realtime',
     "monotonic"),
    (_set(["linux", "timeOffsets", "boottime", "nanosecs"], 10**9), "$.linux.timeOffsets.boottime.nanosecs",
     "out of range"),
    (_set(["linux", "cgroupsPath"], "/a/../../b"), "$.linux.cgroupsPath", '".."'),
    (_set(["linux", "cgroupsPath"], 3), "$.linux.cgroupsPath", "expected a string"),
]


@pytest.mark.parametrize(("edit", "path", "words"), ERRORS, ids=[e[1] + " " + e[2] for e in ERRORS])
def test_errors_name_the_json_path(bundle, edit, path, words):
    doc = full()
    edit(doc)
    with pytest.raises(SpecError) as info:
        plan_from_dict(doc, str(bundle))
    assert info.value.json_path == path
    assert words in str(info.value)
    assert str(info.value).startswith(path + ": ")
    assert isinstance(info.value, UsageError) and isinstance(info.value, ValueError)


CROSS = [
    # (edit of full(), json_path, words) — rules that span two sections
    (lambda d: d["linux"]["namespaces"].pop(4), "$.mounts", "no \"mount\" namespace, so the container"),
    (lambda d: d["linux"]["namespaces"].pop(5), "$.linux.uidMappings", "no user namespace"),
    (lambda d: d["linux"]["namespaces"].pop(3), "$.hostname", "no \"uts\" namespace"),
    (lambda d: (d["linux"]["namespaces"].pop(3), d.pop("hostname")), "$.domainname", "no \"uts\""),
    (lambda d: d["linux"]["namespaces"].pop(7), "$.linux.timeOffsets", "time"),
    (lambda d: d["linux"]["namespaces"][7].update(path="/proc/self/ns/time"), "$.linux.timeOffsets",
     "created for the container"),
    (lambda d: d["linux"]["namespaces"].pop(1), '$.linux.sysctl["net.ipv4.ip_forward"]',
     "network namespace"),
    (lambda d: d["linux"]["namespaces"][1].update(path="/proc/self/ns/net"),
     '$.linux.sysctl["net.ipv4.ip_forward"]', "runtime's own network namespace"),
    (lambda d: d["linux"]["namespaces"].pop(2), '$.linux.sysctl["kernel/shmmax"]', "IPC namespace"),
    (lambda d: d["linux"]["namespaces"][5].update(path="/proc/self/ns/user"), "$.linux.uidMappings",
     "joined"),
    (lambda d: d["process"]["user"].update(uid=70000), "$.process.user.uid", "not mapped"),
    (lambda d: d["process"]["user"].update(gid=70000), "$.process.user.gid", "not mapped"),
    (lambda d: d["process"]["user"]["additionalGids"].append(65536), "$.process.user.additionalGids[2]",
     "not mapped"),
    (lambda d: (d.pop("hooks"), d["mounts"][2].update(source="missing-dir")), "$.mounts[2].source",
     "does not exist"),
]


@pytest.mark.parametrize(("edit", "path", "words"), CROSS, ids=[c[1] + " " + c[2] for c in CROSS])
def test_cross_section_rules(bundle, edit, path, words):
    doc = full()
    edit(doc)
    with pytest.raises(SpecError) as info:
        plan_from_dict(doc, str(bundle))
    assert info.value.json_path == path
    assert words in info.value.message


def test_a_hook_that_runs_first_may_create_a_bind_source(bundle):
    doc = full()
    doc["mounts"][2]["source"] = "made-by-hook"
    assert plan_from_dict(doc, str(bundle)).mounts[2].source == str(bundle / "made-by-hook")


def test_rootless_needs_a_user_namespace_and_mapped_mount_ids(bundle):
    doc = minimal()
    with pytest.raises(SpecError) as info:
        plan_from_dict(doc, str(bundle), rootless=True)
    assert info.value.json_path == "$.linux.namespaces" and "rootless" in info.value.message
    doc = full()
    doc["mounts"][1]["options"].append("uid=70000")
    plan_from_dict(doc, str(bundle))  # rootful: the kernel decides
    with pytest.raises(SpecError) as info:
        plan_from_dict(doc, str(bundle), rootless=True)
    assert info.value.json_path == "$.mounts[1].options" and "uid=70000" in info.value.message
    doc["mounts"][1]["options"][-1] = "uid=1000"
    plan_from_dict(doc, str(bundle), rootless=True)


def test_rootfs_that_is_a_file(bundle):
    (bundle / "file").write_text("")
    doc = minimal()
    doc["root"]["path"] = "file"
    with pytest.raises(SpecError) as info:
        plan_from_dict(doc, str(bundle))
    assert info.value.json_path == "$.root.path" and "not a directory" in info.value.message


def test_namespace_path_that_is_a_regular_file(bundle):
    (bundle / "netns").write_text("")
    doc = minimal()
    doc["linux"]["namespaces"].append({"type": "network", "path": str(bundle / "netns")})
    with pytest.raises(SpecError) as info:
        plan_from_dict(doc, str(bundle))
    assert info.value.json_path == "$.linux.namespaces[1].path"
    assert "not a namespace file" in info.value.message


def test_namespace_path_of_a_fifo_does_not_block(bundle):
    os.mkfifo(bundle / "fifo")
    doc = minimal()
    doc["linux"]["namespaces"].append({"type": "network", "path": str(bundle / "fifo")})
    with pytest.raises(SpecError, match="not a namespace file"):
        plan_from_dict(doc, str(bundle))


def test_joining_another_processes_namespaces(bundle):
    """A real process in its own net and uts namespaces: its /proc/PID/ns files are accepted for
    their kind (and net.* sysctls are then allowed), refused for another kind."""
    if os.geteuid() != 0:
        pytest.skip("needs root (unshare --net)")
    proc = subprocess.Popen(["unshare", "--net", "--uts", "sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{proc.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare did not enter its namespaces"
            time.sleep(0.01)
        doc = minimal()
        doc["linux"]["namespaces"] += [{"type": "network", "path": f"/proc/{proc.pid}/ns/net"},
                                       {"type": "uts", "path": f"/proc/{proc.pid}/ns/uts"}]
        doc["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        doc["hostname"] = "joined"
        plan = plan_from_dict(doc, str(bundle))
        assert plan.namespace("network") == NamespacePlan("network", f"/proc/{proc.pid}/ns/net")
        assert plan.new_namespace_flags == NamespacePlan("mount").flag
        doc["linux"]["namespaces"][1]["path"] = f"/proc/{proc.pid}/ns/uts"
        with pytest.raises(SpecError) as info:
            plan_from_dict(doc, str(bundle))
        assert info.value.json_path == "$.linux.namespaces[1].path"
        assert "is a uts namespace, not a network namespace" in info.value.message
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


# ------------------------------------------------------------------------------------------
# files: not JSON, not UTF-8, duplicates, missing

@pytest.mark.parametrize(("data", "words"), [
    (b"{", "not valid JSON: Expecting property name"),
    (b"", "not valid JSON"),
    (b'{"ociVersion": "1.2.0",}', "line 1 column"),
    (b"\xff\xfe{}", "not"),
    (b'{"root": {"path": "a", "path": "b"}}', 'key "path" appears twice'),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b"[1]", "expected an object"),
    (b"null", "expected an object"),
])
def test_files_that_are_not_a_config(bundle, data, words):
    (bundle / "config.json").write_bytes(data)
    with pytest.raises(SpecError) as info:
        load_plan(str(bundle))
    assert info.value.json_path == "$"
    assert words in info.value.message


def test_missing_config_and_missing_bundle(bundle):
    with pytest.raises(SpecError, match=r"config\.json does not exist"):
        load_plan(str(bundle))
    with pytest.raises(SpecError, match=r"bundle .* does not exist"):
        load_plan(str(bundle / "nope"))
    with pytest.raises(SpecError, match="does not exist"):
        load_plan(str(bundle), str(bundle / "other.json"))


def test_parse_json_is_plain_json():
    assert parse_json('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}


def test_wrong_types_anywhere_give_spec_errors_only(bundle):
    """Replace every value of a full config, at every depth, by values of every JSON type:
    the result is a Plan or a SpecError, never another exception."""
    base = full()
    paths: list[list] = []

    def walk(node, path):
        paths.append(path)
        children: object = ()
        if isinstance(node, dict):
            children = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        for key, child in children:
            walk(child, [*path, key])

    walk(base, [])
    replacements = [None, True, -1, 2**64, 1.5, "", "x/../y", [], [1], {}, {"k": "v"}]
    errors = 0
    for path in paths[1:]:
        for value in replacements:
            doc = copy.deepcopy(base)
            _set(path, value)(doc)
            try:
                plan_from_dict(doc, str(bundle))
            except SpecError:
                errors += 1
    assert errors > len(paths) * 3  # most replacements are wrong, and each was reported as such


# ------------------------------------------------------------------------------------------
# nothing silently ignored: a field is applied, refused with its reason, or another platform's

def test_other_platforms_fields_are_ignored_and_the_rest_applied(bundle):
    doc = full()
    doc["process"]["capabilities"] = {"bounding": ["CAP_KILL"]}
    doc["process"]["user"]["username"] = "x"          # Windows
    doc["process"]["commandLine"] = "x"                # Windows
    doc["windows"] = {}
    plan = plan_from_dict(doc, str(bundle))
    assert plan.process.confinement.capabilities.names("bounding") == ["CAP_KILL"]
    assert plan.process.confinement.capabilities.effective == 0


@pytest.mark.parametrize("where, value, path, words", [
    ("intelRdt", {"closID": "x"}, "$.linux.intelRdt", "Intel RDT"),
    ("mountLabel", "system_u:object_r:container_file_t:s0", "$.linux.mountLabel", "SELinux"),
])
def test_fields_that_cannot_be_applied_are_refused_by_name(bundle, where, value, path, words):
    doc = full()
    if where == "mount-uidMappings":
        doc["mounts"][2]["uidMappings"] = value
    elif where == "mount-option":
        doc["mounts"][2]["options"].append(value)
    else:
        doc["linux"][where] = value
    with pytest.raises(SpecError, match=re.escape(words)) as info:
        plan_from_dict(doc, str(bundle))
    assert info.value.json_path == path
    assert "remove" in str(info.value)


# ------------------------------------------------------------------------------------------
# mount options: the table, and the kernel's reading of the translated flags

def test_every_option_word_is_translated_not_passed_as_data():
    for word in o.recognised():
        tr = o.translate([word])
        assert tr.data == [], word
    assert o.translate(["idmap", "tmpcopyup"]).unsupported == [(1, "tmpcopyup")]
    assert o.translate(["idmap", "ridmap"]).idmap == "ridmap"
    tr = o.translate(["mode=755", "newinstance", "size=1k"])
    assert tr.data == ["mode=755", "newinstance", "size=1k"] and tr.flags == 0


def test_later_words_win():
    tr = o.translate(["ro", "rw", "nosuid", "suid", "noexec"])
    assert (tr.flags, tr.clear_flags) == (o.MS_NOEXEC, o.MS_RDONLY | o.MS_NOSUID)
    tr = o.translate(["rw", "ro", "private", "rshared"])
    assert (tr.flags, tr.clear_flags, tr.propagation) == (o.MS_RDONLY, 0, o.MS_SHARED | o.MS_REC)
    tr = o.translate(["rro", "rrw", "rnoatime", "rstrictatime"])
    assert (tr.recursive_set, tr.recursive_clear) == (o.MOUNT_ATTR_STRICTATIME,
                                                      o.MOUNT_ATTR_RDONLY | o.MOUNT_ATTR__ATIME)


def _in_private_mount_ns(work) -> str:
    """Run ``work()`` in a forked child with its own mount namespace; return what it printed."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(0x20000) != 0:  # CLONE_NEWNS
                raise OSError(ctypes.get_errno(), "unshare")
            if libc.mount(None, b"/", None, o.MS_REC | o.MS_PRIVATE, None) != 0:
                raise OSError(ctypes.get_errno(), "make / rprivate")
            os.write(w, work(libc).encode())
        except BaseException as exc:
            os.write(w, f"ERROR {exc!r}".encode())
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    return out


def _mountinfo_options(path: str) -> tuple[set[str], set[str]]:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                sep = fields.index("-")
                return set(fields[5].split(",")), set(fields[sep + 3].split(","))
    raise AssertionError(f"{path} is not a mount point")


@pytest.mark.parametrize(("words", "mount_opts", "super_opts"), [
    (["ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime"],
     {"ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime"}, {"ro"}),
    (["ro", "rw", "strictatime", "mode=700", "size=64k"], {"rw"}, {"mode=700", "size=64k"}),
    (["sync", "dirsync", "relatime", "nosymfollow"], {"relatime", "nosymfollow"}, {"sync", "dirsync"}),
    (["lazytime", "nodev"], {"nodev"}, {"lazytime"}),
])
def test_flags_as_the_kernel_reads_them(tmp_path, words, mount_opts, super_opts):
    if os.geteuid() != 0:
        pytest.skip("needs root (mount)")
    target = str(tmp_path)
    tr = o.translate(words)

    def work(libc):
        data = ",".join(tr.data).encode() or None
        if libc.mount(b"clonekit-opt-test", target.encode(), b"tmpfs", tr.flags, data) != 0:
            raise OSError(ctypes.get_errno(), "mount")
        return json.dumps([sorted(s) for s in _mountinfo_options(target)])

    per_mount, per_super = (set(s) for s in json.loads(_in_private_mount_ns(work)))
    assert mount_opts <= per_mount, (per_mount, per_super)
    assert super_opts <= per_super, (per_mount, per_super)
    if "strictatime" in words:
        assert not {"relatime", "noatime"} & per_mount


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


@pytest.mark.parametrize(("words", "top", "sub"), [
    (["rbind", "rro", "rnosuid", "rnoatime"], {"ro", "nosuid", "noatime"}, {"ro", "nosuid", "noatime"}),
    (["rbind", "rnoexec", "rstrictatime"], {"noexec"}, {"noexec"}),
    (["rbind", "rnodev", "rrelatime"], {"nodev", "relatime"}, {"nodev", "relatime"}),
])
def test_recursive_options_reach_submounts(tmp_path, words, top, sub):
    """rbind + mount_setattr(AT_RECURSIVE) with the translated MOUNT_ATTR_* bits: the kernel
    accepts the atime encoding and applies the attributes to the submount too."""
    if os.geteuid() != 0:
        pytest.skip("needs root (mount)")
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    dst.mkdir()
    tr = o.translate(words)

    def work(libc):
        def check(rc, what):
            if rc != 0:
                raise OSError(ctypes.get_errno(), what)
        check(libc.mount(b"clonekit-src", str(src).encode(), b"tmpfs", 0, None), "mount src")
        os.mkdir(src / "sub")
        check(libc.mount(b"clonekit-sub", str(src / "sub").encode(), b"tmpfs", o.MS_STRICTATIME, None),
              "mount sub")
        check(libc.mount(str(src).encode(), str(dst).encode(), None, tr.flags, None), "rbind")
        attr = _MountAttr(tr.recursive_set, tr.recursive_clear, 0, 0)
        check(libc.syscall(442, -100, str(dst).encode(), 0x8000, ctypes.byref(attr),  # mount_setattr
                           ctypes.sizeof(attr)), "mount_setattr")
        return json.dumps([sorted(_mountinfo_options(str(dst))[0]),
                           sorted(_mountinfo_options(str(dst / "sub"))[0])])

    got_top, got_sub = (set(s) for s in json.loads(_in_private_mount_ns(work)))
    assert top <= got_top and sub <= got_sub, (got_top, got_sub)


# ------------------------------------------------------------------------------------------
# strings the kernel cannot be given: a lone surrogate ("\ud800" is valid JSON, not text)

LONE = "x\ud800y"


@pytest.mark.parametrize("edit, path", [
    (_set(["hostname"], LONE), "$.hostname"),
    (_set(["domainname"], LONE), "$.domainname"),
    (_set(["root", "path"], LONE), "$.root.path"),
    (_set(["linux", "cgroupsPath"], "/a/" + LONE), "$.linux.cgroupsPath"),
    (_set(["hooks", "createRuntime"], [{"path": "/bin/" + LONE}]), "$.hooks.createRuntime[0].path"),
    (_set(["hooks", "createRuntime"], [{"path": "/bin/true", "args": [LONE]}]),
     "$.hooks.createRuntime[0].args[0]"),
    (_set(["hooks", "createRuntime"], [{"path": "/bin/true", "env": ["A=" + LONE]}]),
     "$.hooks.createRuntime[0].env[0]"),
    (_set(["linux", "namespaces"], [{"type": "mount"}, {"type": "network", "path": "/run/" + LONE}]),
     "$.linux.namespaces[1].path"),
    (_set(["process", "args"], ["sh", LONE]), "$.process.args[1]"),
    (_set(["process", "capabilities"], {"bounding": [LONE]}), "$.process.capabilities.bounding[0]"),
])
def test_a_lone_surrogate_is_a_spec_error_naming_the_field(bundle, edit, path):
    doc = json.loads(json.dumps(full()))
    edit(doc)
    with pytest.raises(SpecError) as info:
        plan_from_dict(doc, str(bundle))
    assert info.value.json_path == path
    assert "surrogate" in str(info.value)


def test_a_config_that_never_ends_is_refused_at_the_size_limit(bundle):
    from clonekit.runtime.spec import MAX_CONFIG_BYTES, load_config

    with pytest.raises(SpecError, match=f"larger than {MAX_CONFIG_BYTES >> 20} MiB"):
        load_config(str(bundle), "/dev/zero")


# ------------------------------------------------------------------------------------------
# confinement fields: each refused the way the kernel (or runc) would refuse it, by JSON path

@pytest.mark.parametrize("edit, path, words", [
    (_set(["process", "capabilities"], {"bounding": ["CAP_SYS_ADMN"]}), "$.process.capabilities.bounding[0]",
     "did you mean 'CAP_SYS_ADMIN'"),
    (_set(["process", "rlimits"], [{"type": "RLIMIT_CPU", "soft": 2, "hard": 1}]),
     "$.process.rlimits[0].soft", "above the hard limit"),
    (_set(["process", "rlimits"], [{"type": "RLIMIT_CPU", "soft": 1, "hard": 1}] * 2),
     "$.process.rlimits[1].type", "given twice"),
    (_set(["process", "rlimits"], [{"type": "RLIMIT_CPU", "soft": 1}]), "$.process.rlimits[0].hard",
     "missing"),
    (_set(["process", "oomScoreAdj"], 1001), "$.process.oomScoreAdj", "out of range"),
    (_set(["process", "ioPriority"], {"class": "IOPRIO_CLASS_NONE"}), "$.process.ioPriority.class",
     "not an I/O scheduling class"),
    (_set(["process", "ioPriority"], {"class": "IOPRIO_CLASS_BE", "priority": 8}),
     "$.process.ioPriority.priority", "out of range"),
    (_set(["process", "scheduler"], {"policy": "SCHED_FIFO"}), "$.process.scheduler.priority", "1 to 99"),
    (_set(["process", "scheduler"], {"policy": "SCHED_OTHER", "priority": 5}), "$.process.scheduler.priority",
     "only SCHED_FIFO and SCHED_RR"),
    (_set(["process", "scheduler"], {"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 1000}),
     "$.process.scheduler", "runtime <= deadline <= period"),
    (_set(["process", "scheduler"], {"policy": "SCHED_BATCH", "period": 5}), "$.process.scheduler.period",
     "only SCHED_DEADLINE"),
    (_set(["process", "scheduler"], {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}),
     "$.process.scheduler.flags[0]", "not a scheduler flag"),
    (_set(["process", "execCPUAffinity"], {"final": "3-1"}), "$.process.execCPUAffinity.final",
     "ends before it starts"),
    (_set(["process", "execCPUAffinity"], {"initial": "0,x"}), "$.process.execCPUAffinity.initial",
     "not a CPU list"),
    (_set(["process", "selinuxLabel"], "system_u:system_r:container_t:s0"), "$.process.selinuxLabel",
     "SELinux, which is not enabled"),
    (_set(["linux", "personality"], {"domain": "LINUX64"}), "$.linux.personality.domain",
     "not an execution domain"),
    (_set(["linux", "personality"], {"domain": "LINUX", "flags": ["X"]}), "$.linux.personality.flags",
     "defines no personality flags"),
])
def test_confinement_fields_are_checked(bundle, edit, path, words):
    doc = full()
    edit(doc)
    with pytest.raises(SpecError) as info:
        plan_from_dict(doc, str(bundle))
    assert info.value.json_path == path
    assert words in str(info.value)


def test_confinement_fields_are_read_into_the_plan(bundle):
    doc = full()
    doc["process"].update(
        capabilities={"bounding": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL"],
                      "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]},
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}], oomScoreAdj=-5,
        ioPriority={"class": "IOPRIO_CLASS_IDLE"}, execCPUAffinity={"initial": "0-2,5", "final": ""},
        scheduler={"policy": "SCHED_DEADLINE", "runtime": 10_000, "deadline": 20_000,
                   "flags": ["SCHED_FLAG_RESET_ON_FORK"]})
    doc["linux"]["personality"] = {"domain": "LINUX32"}
    conf = plan_from_dict(doc, str(bundle)).process.confinement
    assert conf.capabilities.names("bounding") == ["CAP_CHOWN", "CAP_KILL"]
    assert conf.capabilities.names("ambient") == ["CAP_KILL"] and conf.capabilities.effective == 0
    assert conf.capabilities.not_raisable == ("CAP_CHOWN",)  # not permitted and inheritable
    assert [(r.type, r.soft, r.hard) for r in conf.rlimits] == [("RLIMIT_NOFILE", 10, 20)]
    assert conf.oom_score_adj == -5 and conf.io_priority.value == 3 << 13
    assert conf.cpu_affinity.initial == frozenset({0, 1, 2, 5}) and conf.cpu_affinity.final is None
    assert (conf.scheduler.policy, conf.scheduler.runtime, conf.scheduler.deadline) == \
        ("SCHED_DEADLINE", 10_000, 20_000)
    assert conf.personality.domain == "LINUX32" and conf.no_new_privileges
