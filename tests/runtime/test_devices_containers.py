"""Device rules of real containers: the same devices.list as runc for `runc spec`'s rules, nodes
the rules do not allow refused (EPERM) though they exist in the container, linux.devices entries
usable, refusals that name the rule; and the cgroup2 (BPF) branch of the runtime's wiring on
this host's cgroup2 mount."""

from __future__ import annotations

import errno
import os
import uuid

import pytest
from runtime_helpers import RUNC, script, sections

from clonekit.runtime.jsonfields import SpecError
from clonekit.runtime.plan import DevicePlan, Plan
from clonekit.security.devices import DeviceRule

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="device rules need root")

RUNC_SPEC_RULES = [{"allow": False, "access": "rwm"}]  # what `runc spec` writes
CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
KMSG_BIND = {"destination": "/dev/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]}


def rules(devices: list[dict[str, object]]):
    def edit(config):
        config["linux"]["resources"] = {"devices": devices}
    return edit


def with_mknod(config):
    config["process"]["capabilities"] = {k: ["CAP_MKNOD"] for k in ("bounding", "effective", "permitted")}


@pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt install runc)")
@pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/devices/devices.list"),
                    reason="no v1 devices controller (runc would use a BPF program: nothing to read)")
def test_devices_list_equals_runcs(pair) -> None:
    results = pair.run(["cat", "/sys/fs/cgroup/devices/devices.list"], rules(RUNC_SPEC_RULES),
                       lambda c: c["mounts"].append(dict(CGROUP_MOUNT)))
    ours, theirs = results["clonekit"], results["runc"]
    assert ours.returncode == 0 and theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    assert "c 1:3 rwm" in ours.stdout and "a *:* rwm" not in ours.stdout


@pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt install runc)")
def test_nodes_the_rules_do_not_allow_are_refused_as_under_runc(pair) -> None:
    """/dev/kmsg bind-mounted in, and a 1:11 node made with CAP_MKNOD (mknod itself is allowed:
    runc's defaults allow `m` for every device): both refused on open, /dev/null fine."""
    cmd = script(
        null="echo x > /dev/null && echo ok",
        bound="head -c1 /dev/kmsg >/dev/null 2>/tmp/e; cat /tmp/e",
        made="mknod /dev/k2 c 1 11 && echo made; head -c1 /dev/k2 >/dev/null 2>/tmp/e; cat /tmp/e",
    )
    results = pair.run(cmd, rules(RUNC_SPEC_RULES), with_mknod,
                       lambda c: c["mounts"].append(dict(KMSG_BIND)))
    outs = {name: sections(r.stdout) for name, r in results.items()}
    assert outs["clonekit"] == outs["runc"], results
    ours = outs["clonekit"]
    assert ours["null"] == "ok\n"
    assert "Operation not permitted" in ours["bound"]
    assert ours["made"].startswith("made\n") and "Operation not permitted" in ours["made"]


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_a_linux_devices_entry_is_usable(bundles) -> None:
    """runc leaves the allow to the caller (Docker adds it); clonekit allows each linux.devices
    entry, so a device the config asks for is usable without a separate rule."""
    def edit(config):
        config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                       "fileMode": 0o666}]
        config["linux"]["resources"] = {"devices": RUNC_SPEC_RULES}
        config["mounts"].append(dict(KMSG_BIND))

    cid, bundle, _ = bundles.new(["sh", "-c", "exec 3<>/dev/fuse && echo fuse-ok; head -c1 /dev/kmsg"],
                                 edit=[edit])
    result = bundles.cli("run", "--bundle", bundle, cid, check=False)
    assert "fuse-ok" in result.stdout, result.stderr
    assert "Operation not permitted" in result.stderr and result.returncode != 0


def test_a_hole_in_a_wildcard_rule_is_refused_with_its_path(bundles) -> None:
    cid, bundle, _ = bundles.new(["true"], edit=[rules([
        {"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}])])
    result = bundles.cli("run", "--bundle", bundle, cid, check=False)
    assert result.returncode != 0
    assert "$.linux.resources.devices[2]" in result.stderr and "cut a hole" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_cgroups_a_deny_rule_is_an_error_and_runc_default_a_notice(bundles) -> None:
    cid, bundle, _ = bundles.new(["true"], edit=[rules([
        {"allow": False, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 11,
                                            "access": "rwm"}])])
    refused = bundles.cli("--cgroup-manager", "disabled", "run", "--bundle", bundle, cid, check=False)
    assert refused.returncode != 0
    assert "$.linux.resources.devices[1]" in refused.stderr and "cannot be enforced" in refused.stderr
    assert "Traceback" not in refused.stderr

    cid, bundle, _ = bundles.new(["true"], edit=[rules(RUNC_SPEC_RULES)])
    ran = bundles.cli("--cgroup-manager", "disabled", "run", "--bundle", bundle, cid, check=False)
    assert ran.returncode == 0, ran.stderr
    assert "device rules not enforced" in ran.stderr


# -- the cgroup2 branch of the wiring, on this host's cgroup2 mount ----------------------------

def _cgroup2_hierarchy():
    from clonekit.cgroups.layout import detect

    layout = detect()
    if layout.v2 is None:
        pytest.skip("no cgroup2 hierarchy is mounted")
    return layout.v2


def test_the_runtime_attaches_a_bpf_program_where_the_group_is_cgroup2_only(tmp_path) -> None:
    """A group in cgroup2 alone (as on a unified host): the runtime's helper attaches the BPF
    program; a child in the group can use /dev/null and the linux.devices entry, not kmsg."""
    from clonekit.cgroups import Cgroup
    from clonekit.cgroups.layout import Layout
    from clonekit.runtime.container import _apply_device_rules

    cid = f"ck-{uuid.uuid4().hex[:10]}"
    group = Cgroup.create(f"/clonekit-test/{cid}", container_id=cid, layout=Layout([_cgroup2_hierarchy()]))
    plan = Plan(oci_version="1.2.0", root="/", device_rules=(DeviceRule(allow=False),),
                devices=(DevicePlan("/dev/x", "c", 1, 7),))  # /dev/full is in the defaults anyway
    os.mknod(tmp_path / "kmsg", 0o600 | 0o020000, os.makedev(1, 11))
    os.mknod(tmp_path / "mem", 0o600 | 0o020000, os.makedev(1, 1))
    try:
        _apply_device_rules(plan, group)
        got = _probe_in(group.v2_dir or "", [str(tmp_path / "kmsg"), str(tmp_path / "mem"), "/dev/null"])
    finally:
        group.remove()
    assert got == [errno.EPERM, errno.EPERM, 0]


def test_the_runtime_names_the_rule_it_cannot_express_on_cgroup2() -> None:
    from clonekit.cgroups import Cgroup
    from clonekit.cgroups.layout import Layout
    from clonekit.runtime.container import _apply_device_rules

    cid = f"ck-{uuid.uuid4().hex[:10]}"
    group = Cgroup.create(f"/clonekit-test/{cid}", container_id=cid, layout=Layout([_cgroup2_hierarchy()]))
    # the deny of c 1:* is then pierced by runc's default allow of c 1:3, appended after it
    plan = Plan(oci_version="1.2.0", root="/", device_rules=(DeviceRule(allow=True),
                                                             DeviceRule(False, "c", 1, None, "rwm")))
    try:
        with pytest.raises(SpecError) as info:
            _apply_device_rules(plan, group)
    finally:
        group.remove()
    assert info.value.json_path == "$.linux.resources.devices"
    assert "runc's default devices" in info.value.message


def _probe_in(group_dir: str, paths: list[str]) -> list[int]:
    go_r, go_w = os.pipe()
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(go_w)
            os.close(res_r)
            os.read(go_r, 1)
            out = []
            for path in paths:
                try:
                    os.close(os.open(path, os.O_RDONLY))
                    out.append("0")
                except OSError as exc:
                    out.append(str(exc.errno))
            os.write(res_w, ",".join(out).encode())
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(res_w)
    try:
        with open(os.path.join(group_dir, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        os.write(go_w, b"x")
        text = os.read(res_r, 256).decode()
    finally:
        os.close(go_w)
        os.close(res_r)
        os.waitpid(pid, 0)
    return [int(x) for x in text.split(",")]
