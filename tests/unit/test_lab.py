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
