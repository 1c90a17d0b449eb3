"""scripts/role_docs.py: each role's README reference comes from its argument spec, the
hand-written opening is kept, and --check (make lint) names a README the spec outgrew."""

import pathlib
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "role_docs.py"
SPEC = {"argument_specs": {"main": {
    "short_description": "A role of the test",
    "description": ["Does one thing."],
    "options": {
        "demo_port": {"type": "int", "default": 8899, "description": "Port | on loopback."},
        "demo_mode": {"type": "str", "default": "on", "choices": ["on", "off"], "description": "Mode."},
        "demo_secret": {"type": "str", "required": True, "no_log": True, "description": "A password."},
    }}}}


def role_docs(root, *args):
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), *args],
                          capture_output=True, text=True, check=False)


def make_role(tmp_path, spec=SPEC):
    meta = tmp_path / "roles" / "demo" / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "argument_specs.yml").write_text(yaml.safe_dump(spec))
    return tmp_path / "roles" / "demo" / "README.md"


def test_the_readme_is_written_from_the_spec_and_then_up_to_date(tmp_path):
    readme = make_role(tmp_path)
    assert role_docs(tmp_path, "--check").returncode == 1  # missing is stale
    assert role_docs(tmp_path).returncode == 0
    text = readme.read_text()
    assert text.startswith("# Role `demo`\n\nA role of the test.")
    assert "| `demo_port` | int | `8899` | Port \\| on loopback. |" in text
    assert "One of: `on`, `off`." in text
    assert "| `demo_secret` | str | (required) | A password. Secret: never printed. |" in text
    assert role_docs(tmp_path, "--check").returncode == 0


def test_a_changed_spec_makes_check_fail_naming_the_readme_and_keeps_the_opening(tmp_path):
    readme = make_role(tmp_path)
    role_docs(tmp_path)
    opening = "# Role `demo`\n\nWritten by hand: why this role exists.\n\n"
    readme.write_text(opening + readme.read_text().split("\n\n", 2)[2])
    assert role_docs(tmp_path, "--check").returncode == 0
    spec = yaml.safe_load(yaml.safe_dump(SPEC))
    spec["argument_specs"]["main"]["options"]["demo_port"]["default"] = 9000
    make_role(tmp_path, spec)
    stale = role_docs(tmp_path, "--check")
    assert stale.returncode == 1 and "roles/demo/README.md" in stale.stderr, stale.stderr
    assert "`8899`" in readme.read_text()  # --check changes nothing
    role_docs(tmp_path)
    assert readme.read_text().startswith(opening) and "`9000`" in readme.read_text()


def test_every_role_readme_in_the_tree_is_current():
    done = role_docs(ROOT, "--check")
    assert done.returncode == 0, done.stderr
