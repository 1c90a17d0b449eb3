"""sysctl-converge, the script that puts role sysctl's settings in force.

Each case runs it in a network namespace of its own (unshare --net), where the net.*
settings are that namespace's: the machine running the tests is not changed. The
kernel-wide settings (kernel.*, fs.*) are checked on a converged host by Molecule.
"""

import json
import pathlib
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles/sysctl/files/sysctl-converge"
HARDENING = yaml.safe_load((ROOT / "roles/sysctl/vars/main.yml").read_text())["__sysctl_hardening"]
NET = {s["key"]: s["value"] for s in HARDENING if s["key"].startswith("net.")}


def proc(key):
    return "/proc/sys/" + key.replace(".", "/")


def in_netns(script, *unshare):
    """Run a shell script in a new network namespace; return its completed process."""
    return subprocess.run(["unshare", "--net", *unshare, "sh", "-euc", script], capture_output=True, text=True,
                          check=False, timeout=60)


def conf(tmp_path, lines):
    path = tmp_path / "60-test.conf"
    path.write_text("# test\n" + "".join(f"{line}\n" for line in lines))
    return path


def values_script(keys):
    return "".join(f'printf "%s=%s\\n" {key} "$(cat {proc(key)})"\n' for key in keys)


def read_values(stdout):
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line and not line.startswith("{"))


def test_the_net_settings_are_put_in_force_and_a_second_run_sets_nothing(tmp_path):
    path = conf(tmp_path, [f"{key} = {value}" for key, value in NET.items()])
    run = in_netns(f"{SCRIPT} {path}\n{SCRIPT} {path}\n" + values_script(NET))
    assert run.returncode == 0, run.stderr
    first, second = (json.loads(line) for line in run.stdout.splitlines() if line.startswith("{"))
    assert first["set"], "a new namespace starts with kernel defaults, some of which the role changes"
    assert first["held"] == [] and first["absent"] == []
    assert second == {"set": [], "held": [], "absent": [], "kept": len(NET)}
    assert read_values(run.stdout) == NET


def test_an_unknown_key_refuses_the_whole_file_before_anything_is_set(tmp_path):
    path = conf(tmp_path, ["net.ipv4.conf.all.log_martians = 1", "net.ipv4.tcp_synccookies = 1"])
    run = in_netns(f"{SCRIPT} {path} || echo rc=$?\n" + values_script(["net.ipv4.conf.all.log_martians"]))
    assert "rc=2" in run.stdout
    assert "line 3" in run.stderr and "'net.ipv4.tcp_synccookies' is not a kernel setting" in run.stderr
    assert read_values(run.stdout)["net.ipv4.conf.all.log_martians"] == "0", "nothing may be set"


def test_an_optional_key_missing_from_this_kernel_is_reported_absent(tmp_path):
    path = conf(tmp_path, ["-kernel.no_such_module.setting = 1", "net.ipv4.conf.all.log_martians = 1"])
    run = in_netns(f"{SCRIPT} {path}")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["absent"] == ["kernel.no_such_module.setting"]
    assert report["set"] == ["net.ipv4.conf.all.log_martians"]


@pytest.mark.parametrize("line", ["net.ipv4.tcp_syncookies", "net.ipv4.tcp_syncookies =", "= 1",
                                  "net..ipv4.tcp_syncookies = 1", "../../etc/passwd = 1"])
def test_a_malformed_line_is_refused_by_check_naming_it(tmp_path, line):
    run = subprocess.run([str(SCRIPT), "--check", str(conf(tmp_path, [line]))], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 2
    assert "line 2" in run.stderr


def test_a_value_the_kernel_rejects_fails_naming_it(tmp_path):
    path = conf(tmp_path, ["net.ipv4.tcp_syncookies = banana"])
    run = in_netns(f"{SCRIPT} {path} || echo rc=$?")
    assert "rc=3" in run.stdout
    assert "net.ipv4.tcp_syncookies = banana" in run.stderr


def test_a_read_only_proc_sys_holds_the_settings_and_names_them(tmp_path):
    """As in a container: nothing can be written, every differing setting is named."""
    path = conf(tmp_path, [f"{key} = {value}" for key, value in NET.items()])
    read_only = "mount --make-rprivate /\nmount --bind /proc/sys /proc/sys\nmount -o remount,bind,ro /proc/sys\n"
    run = in_netns(read_only + f"{SCRIPT} {path}\n" + values_script(NET), "--mount")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[0])
    now = read_values(run.stdout)
    assert report["set"] == []
    assert {h["key"] for h in report["held"]} == {key for key, value in NET.items() if now[key] != value}
    assert report["held"], "a new namespace differs from the role's settings"
    assert report["kept"] + len(report["held"]) == len(NET)
