"""The `spec` verb's config (compared with `runc spec` on this machine) and the features document
(compared with `runc features` and with what clonekit's spec reader really accepts)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from clonekit.errors import UsageError
from clonekit.runtime import options as o
from clonekit.runtime.defaults import OCI_VERSION, SpecExists, default_config, write_spec
from clonekit.runtime.features import features_document
from clonekit.runtime.plan import NAMESPACE_FLAGS
from clonekit.runtime.spec import HOOKS_KNOWN, plan_from_dict
from clonekit.security.caps import CAPABILITIES
from clonekit.security.devices import DeviceRule
from clonekit.security.rlimits import Rlimit

RUNC = shutil.which("runc")
NEWER_RUNC_MASKED = {"/sys/devices/virtual/tpm"}  # masked by runc >= 1.2, not by Debian's 1.1
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__import__("clonekit").__file__)))


def _runc_spec(tmp_path, *extra: str, prefix: tuple[str, ...] = ()) -> dict:
    out = tmp_path / ("runc" + "".join(extra).replace("-", ""))
    out.mkdir()
    os.chmod(out, 0o777)
    subprocess.run([*prefix, RUNC, "spec", *extra], cwd=out, check=True, capture_output=True)
    return json.loads((out / "config.json").read_text())


def _compare_with_runc(ours: dict, theirs: dict) -> None:
    assert [m["destination"] for m in ours["mounts"]] == [m["destination"] for m in theirs["mounts"]]
    for mine, runc in zip(ours["mounts"], theirs["mounts"], strict=True):
        assert mine == runc, mine["destination"]
    assert ours["linux"]["namespaces"] == theirs["linux"]["namespaces"]
    masked, runc_masked = set(ours["linux"]["maskedPaths"]), set(theirs["linux"]["maskedPaths"])
    assert runc_masked <= masked and masked - runc_masked <= NEWER_RUNC_MASKED
    assert ours["linux"]["readonlyPaths"] == theirs["linux"]["readonlyPaths"]
    for key in ("uidMappings", "gidMappings", "resources"):
        assert ours["linux"].get(key) == theirs["linux"].get(key), key
    assert set(ours["linux"]) == set(theirs["linux"])
    assert ours["root"] == theirs["root"]
    for key in ("terminal", "user", "args", "env", "cwd", "rlimits", "noNewPrivileges"):
        assert ours["process"][key] == theirs["process"][key], key
    for key in ("bounding", "effective", "permitted"):  # runc 1.1 also writes "ambient"; 1.2 does not
        assert ours["process"]["capabilities"][key] == theirs["process"]["capabilities"][key]
    assert set(ours) == set(theirs)


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
@pytest.mark.parametrize("rootless", [False, True])
def test_same_structure_as_runc_spec(tmp_path, rootless):
    theirs = _runc_spec(tmp_path, *(["--rootless"] if rootless else []))
    _compare_with_runc(default_config(rootless=rootless), theirs)


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
def test_rootless_spec_as_an_unprivileged_user_matches_runc(tmp_path):
    """Run by uid/gid 65534: both map container root to that user."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to become an unprivileged user")
    nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    theirs = _runc_spec(tmp_path, "--rootless", prefix=nobody)
    code = "import json; from clonekit.runtime.defaults import default_config; " \
           "print(json.dumps(default_config(rootless=True)))"
    proc = subprocess.run([*nobody, sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC}, cwd="/")
    if proc.returncode != 0:
        pytest.skip(f"uid 65534 cannot import clonekit from {SRC}: {proc.stderr.strip()[-200:]}")
    ours = json.loads(proc.stdout)
    assert ours["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 65534, "size": 1}]
    _compare_with_runc(ours, theirs)


@pytest.mark.parametrize("rootless", [False, True])
def test_default_config_round_trips_to_a_plan(tmp_path, rootless):
    (tmp_path / "rootfs").mkdir()
    doc = default_config(rootless=rootless)
    plan = plan_from_dict(json.loads(json.dumps(doc)), str(tmp_path), rootless=rootless)
    assert plan.oci_version == OCI_VERSION and plan.root == str(tmp_path / "rootfs")
    assert plan.root_readonly and plan.hostname == "clonekit"
    assert [m.destination for m in plan.mounts] == [m["destination"] for m in doc["mounts"]]
    assert (plan.namespace("user") is not None) == rootless
    assert (plan.namespace("network") is None) == rootless
    sys_mount = next(m for m in plan.mounts if m.destination == "/sys")
    if rootless:
        assert sys_mount.type == "bind" and sys_mount.source == "/sys"
        assert sys_mount.flags & (o.MS_BIND | o.MS_REC | o.MS_RDONLY) == o.MS_BIND | o.MS_REC | o.MS_RDONLY
        assert plan.uid_mappings[0].host_id == os.geteuid()
    else:
        assert sys_mount.type == "sysfs" and sys_mount.flags & o.MS_RDONLY
    # every security field is applied: runc's three capabilities, its NOFILE limit, deny-all devices
    conf = plan.process.confinement
    three = sum(1 << CAPABILITIES[c] for c in ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"))
    assert (conf.capabilities.bounding, conf.capabilities.effective, conf.capabilities.permitted) == \
        (three, three, three)
    assert conf.capabilities.inheritable == conf.capabilities.ambient == 0
    assert conf.rlimits == (Rlimit(type="RLIMIT_NOFILE", soft=1024, hard=1024),)
    assert conf.no_new_privileges
    assert plan.device_rules == (() if rootless else (DeviceRule(allow=False, type="a", access="rwm"),))
    assert default_config(rootless=rootless) == doc  # a fresh dict each call


def test_write_spec_refuses_to_overwrite(tmp_path):
    path = write_spec(str(tmp_path))
    text = (tmp_path / "config.json").read_text()
    assert path == str(tmp_path / "config.json")
    assert json.loads(text) == default_config(rootless=False)
    assert text.startswith('{\n\t"ociVersion"')  # runc's layout: tab indents
    (tmp_path / "config.json").write_text("mine")
    with pytest.raises(SpecExists, match=r"exists\. Remove it first"):
        write_spec(str(tmp_path), rootless=True)
    assert (tmp_path / "config.json").read_text() == "mine"
    with pytest.raises(UsageError, match="does not exist"):
        write_spec(str(tmp_path / "missing"))


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
def test_runc_refuses_to_overwrite_too(tmp_path):
    (tmp_path / "config.json").write_text("mine")
    proc = subprocess.run([RUNC, "spec"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "exists" in proc.stderr
    assert (tmp_path / "config.json").read_text() == "mine"


def test_write_spec_rootless(tmp_path):
    write_spec(str(tmp_path), rootless=True)
    doc = json.loads((tmp_path / "config.json").read_text())
    assert {"type": "user"} in doc["linux"]["namespaces"]
    assert doc["linux"]["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]


# ------------------------------------------------------------------------------------------
# features

def test_features_document_shape():
    doc = features_document()
    json.dumps(doc)
    assert doc["ociVersionMin"] == "1.0.0" and doc["ociVersionMax"] == OCI_VERSION
    assert doc["hooks"] == list(HOOKS_KNOWN)
    assert doc["mountOptions"] == sorted(set(doc["mountOptions"])) == o.recognised()
    assert not set(o.UNSUPPORTED) & set(doc["mountOptions"])
    linux = doc["linux"]
    assert set(linux["namespaces"]) == set(NAMESPACE_FLAGS)
    # from the tables the code applies: every capability of this kernel, every seccomp action
    assert linux["capabilities"] == list(CAPABILITIES)[:len(linux["capabilities"])]
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert len(linux["capabilities"]) == int(f.read()) + 1
    assert linux["seccomp"]["enabled"] and "SCMP_ACT_NOTIFY" in linux["seccomp"]["actions"]
    assert set(linux["seccomp"]["supportedFlags"]) <= set(linux["seccomp"]["knownFlags"])
    for key in ("apparmor", "selinux"):  # this machine has neither LSM
        assert linux[key] == {"enabled": os.path.exists("/sys/fs/selinux/enforce" if key == "selinux"
                                                        else "/sys/kernel/security/apparmor")}
    assert linux["intelRdt"] == {"enabled": False}
    assert linux["mountExtensions"] == {"idmap": {"enabled": True}}
    assert {"idmap", "ridmap"} <= set(doc["mountOptions"])
    assert all(isinstance(v, str) for v in doc["annotations"].values())
    assert doc["potentiallyUnsafeConfigAnnotations"] == []
    assert features_document() == doc and features_document() is not doc


def test_features_claims_are_accepted_by_the_spec_reader(tmp_path):
    """Every version bound, hook, namespace and mount option the document lists is accepted."""
    (tmp_path / "rootfs").mkdir()
    doc = features_document()
    for version in (doc["ociVersionMin"], doc["ociVersionMax"]):
        config = {"ociVersion": version, "root": {"path": "rootfs"},
                  "linux": {"namespaces": [{"type": t} for t in doc["linux"]["namespaces"]],
                            "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}],
                            "gidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]},
                  "hooks": {name: [{"path": "/bin/true"}] for name in doc["hooks"]},
                  "mounts": [{"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                              "options": doc["mountOptions"]}]}
        config["process"] = {"args": ["true"], "cwd": "/",
                             "capabilities": {"bounding": doc["linux"]["capabilities"]}}
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                      "architectures": doc["linux"]["seccomp"]["archs"],
                                      "syscalls": [{"names": ["getpid"], "action": action, "errnoRet": 1}
                                                   for action in doc["linux"]["seccomp"]["actions"]
                                                   if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")]}
        plan = plan_from_dict(config, str(tmp_path))
        assert plan.mounts[0].data == ""  # all of them understood, none handed to the filesystem
        assert plan.process.confinement.capabilities.names("bounding") == doc["linux"]["capabilities"]
        assert plan.new_namespace_flags == sum(NAMESPACE_FLAGS.values())
        assert all(getattr(plan.hooks, attr) for attr in HOOKS_KNOWN.values())


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
def test_features_compared_with_runc():
    theirs = json.loads(subprocess.run([RUNC, "features"], capture_output=True, text=True,
                                       check=True).stdout)
    ours = features_document()
    assert set(theirs["mountOptions"]) - set(o.UNSUPPORTED) <= set(ours["mountOptions"])
    assert set(theirs["linux"]["namespaces"]) <= set(ours["linux"]["namespaces"])
    assert ours["hooks"] == theirs["hooks"]
    assert ours["linux"]["capabilities"] == theirs["linux"]["capabilities"]
    for key in ("actions", "operators"):
        assert set(theirs["linux"]["seccomp"][key]) <= set(ours["linux"]["seccomp"][key]), key
    assert set(ours) >= {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations"}
