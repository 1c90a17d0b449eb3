"""scripts/checks.py and the harness's run_checked: a stage whose checks differ from
its list in tests/checks/ fails, naming each check that did not run, was skipped, or
ran without being listed; the lists are complete for every stage make test runs."""
import os
import pathlib
import subprocess
import sys

import pytest

PROJECT = pathlib.Path(__file__).resolve().parents[2]
HARNESS = PROJECT / "scripts" / "harness.sh"
sys.path.insert(0, str(PROJECT / "scripts"))
import checks  # noqa: E402  (a script, not a package)

DEMO = '''
import pytest

def test_one():
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_two(n):
    pass

def test_skipped():
    pytest.skip("not here")
'''


def run_stage(tmp_path, listed, demo=DEMO):
    """A real pytest stage run through the harness's run_checked against a list."""
    (tmp_path / "test_demo.py").write_text(demo)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "demo.txt").write_text("# the demo stage\n" + "\n".join(listed) + "\n")
    junit = tmp_path / "junit"
    script = f'''source "{HARNESS}"
JUNIT="{junit}"
run_checked demo "$VENV/bin/pytest" -q -p no:cacheprovider --junitxml="{junit}/demo.xml" "{tmp_path}/test_demo.py"
'''
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "CHECKS_LISTS": str(lists), "HARNESS_LOGDIR": str(tmp_path / "logs")})
    return done.returncode, done.stdout + done.stderr, junit


ALL_BUT_SKIPPED = ["test_demo::test_one", "test_demo::test_two[1]", "test_demo::test_two[2]"]


def test_a_listed_check_that_is_not_collected_fails_the_stage_naming_it(tmp_path):
    rc, out, _ = run_stage(tmp_path, ALL_BUT_SKIPPED + ["test_demo::test_skipped", "test_demo::test_removed"])
    assert rc != 0, out
    assert "not run: test_demo::test_removed" in out, out


def test_a_skipped_check_fails_the_stage_naming_it(tmp_path):
    rc, out, _ = run_stage(tmp_path, ALL_BUT_SKIPPED + ["test_demo::test_skipped"])
    assert rc != 0, out
    assert "skipped: test_demo::test_skipped" in out, out
    assert "not run:" not in out and "not in the list:" not in out, out


def test_a_check_missing_from_the_list_fails_the_stage_naming_it(tmp_path):
    rc, out, _ = run_stage(tmp_path, ["test_demo::test_one", "test_demo::test_two[1]", "test_demo::test_skipped"])
    assert rc != 0, out
    assert "not in the list: test_demo::test_two[2]" in out, out


def test_counts_are_kept_for_the_summary(tmp_path):
    _, out, junit = run_stage(tmp_path, ALL_BUT_SKIPPED + ["test_demo::test_skipped"])
    assert "checks of demo: 3 run, 3 passed, 0 failed, 1 skipped" in out, out
    assert (junit / "demo.counts").read_text().split() == ["3", "3", "0", "1"]


def test_a_list_that_matches_passes(tmp_path):
    # The same demo without its skipped check.
    rc, out, _ = run_stage(tmp_path, ALL_BUT_SKIPPED, demo=DEMO.split("def test_skipped")[0])
    assert rc == 0, out
    assert "checks of demo: 3 run, 3 passed, 0 failed, 0 skipped" in out, out


def test_no_results_fails_the_stage(tmp_path):
    assert checks.verify("unit", str(tmp_path / "none.xml")) == 1


@pytest.mark.parametrize("stage", ["unit", "default-trixie", "default-bookworm", "multihost"])
def test_every_stage_of_make_test_has_a_list(stage):
    assert len(checks.expected(stage)) > 0


def test_the_unit_list_is_what_pytest_collects():
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           str(PROJECT / "tests" / "unit")], capture_output=True, text=True, check=True)
    ids = (line.split("::", 1) for line in done.stdout.splitlines() if "::" in line)
    collected = {f"{pathlib.Path(path).stem}::{name}" for path, name in ids}
    assert collected == checks.expected("unit")
