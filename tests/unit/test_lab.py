"""The lab's inventory as docs/testing.md describes it: `LAB_DISTRO=bookworm make lab`
puts the lab's mail host on Debian 12 (make test deploys the default lab, on Debian 13,
and the Debian 12 Molecule run deploys the same group_vars on Debian 12)."""
import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("distro, image", [(None, "debian-systemd:trixie"), ("bookworm", "debian-systemd:bookworm")],
                         ids=["unset", "bookworm"])
def test_lab_distro_chooses_the_mail_hosts_image(distro, image):
    env = {k: v for k, v in os.environ.items() if k != "LAB_DISTRO"}
    if distro:
        env["LAB_DISTRO"] = distro
    # debug runs on this machine: nothing connects to the lab host.
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible"), "mx1.example.test", "-i", "inventory/lab",
                          "-m", "ansible.builtin.debug", "-a", "var=lab_image"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(rf'"lab_image": "{re.escape(image)}"', out.stdout), out.stdout
    assert "`LAB_DISTRO=bookworm make lab`" in (ROOT / "docs/testing.md").read_text()


CONTAINER_KEYS = ("capabilities", "security_opts", "cgroupns_mode", "volumes", "tmpfs")


def test_every_systemd_container_has_the_flags_defined_once():
    """lab/systemd-container.yml is the one definition: make lab and the bench read it, and
    every platform of the Molecule scenarios (which cannot include a file) carries it."""
    import yaml

    flags = yaml.safe_load((ROOT / "lab/systemd-container.yml").read_text())["lab_systemd_container"]
    assert set(flags) == set(CONTAINER_KEYS)
    for scenario in ("default", "multihost"):
        platforms = yaml.safe_load((ROOT / f"molecule/{scenario}/molecule.yml").read_text())["platforms"]
        assert len(platforms) >= 5, scenario
        for platform in platforms:
            assert {key: platform.get(key) for key in CONTAINER_KEYS} == flags, (scenario, platform["name"])
    up = (ROOT / "lab/playbooks/up.yml").read_text()
    assert "../systemd-container.yml" in up
    assert all(f"lab_systemd_container.{key}" in up for key in CONTAINER_KEYS)
    bench = (ROOT / "scripts/bench.py").read_text()
    assert "lab/systemd-container.yml" in bench


def test_the_bench_starts_its_containers_with_those_flags():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import bench

    assert bench.SYSTEMD_FLAGS == ["--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
                                   "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                                   "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                                   "--tmpfs", "/run", "--tmpfs", "/run/lock"]
