"""scripts/harness.sh, sourced: a stage ends when its command does, and a daemon the
harness starts holds none of its pipes (CI of stop 27 hung for 90 minutes on both)."""
import os
import pathlib
import signal
import subprocess
import time

import pytest

HARNESS = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "harness.sh"


def harness(script, logdir, timeout):
    """Run SCRIPT in bash with the harness's functions defined; its output, or a
    failure naming the hang."""
    try:
        done = subprocess.run(
            ["bash", "-c", f'source "{HARNESS}"\n{script}'],
            env={**os.environ, "HARNESS_LOGDIR": str(logdir)},
            capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"still running after {timeout}s: {hung.stdout!r}")
    assert done.returncode == 0, done.stderr
    return done.stdout


def stop(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def test_a_stage_ends_when_its_command_does_even_if_a_child_it_left_holds_the_pipe(tmp_path):
    # A child holding the stage's stdout for five minutes: the stage must not wait it out.
    # The stage neither waits for it nor stops it: it is not the harness's to stop.
    out = harness("""
        leaves_a_child() { echo before; sleep 300 & CHILD=$!; echo "child $CHILD"; echo after; }
        stage "leaves a child" leaves_a_child
        echo "stage returned"
        if kill -0 "$CHILD"; then echo "child still running"; else echo "child gone"; fi
    """, tmp_path, timeout=60)
    child = int(out.split("child ")[1].split()[0])
    stop(child)
    assert "stage returned" in out
    assert "child still running" in out
    assert "<== leaves a child:" in out
    log = (tmp_path / "leaves-a-child.log").read_text()
    assert "before" in log and "after" in log


def test_a_failed_stage_still_reports_its_failure(tmp_path):
    out = harness("""
        fails() { echo 'fatal: [mx1]: FAILED! => {"msg": "no"}'; return 3; }
        stage "fails" fails || echo "rc $?"
        cat "$FAILURES"
    """, tmp_path, timeout=60)
    assert "rc 3" in out
    assert "<== fails:" in out and "(exit 3)" in out
    assert 'fatal: [mx1]: FAILED! => {"msg": "no"}' in out


def test_a_detached_daemon_holds_only_its_log_and_dev_null(tmp_path):
    # Started from inside a stage, as ensure_docker starts dockerd.
    log = tmp_path / "daemon.log"
    out = harness(f"""
        start() {{ echo "pid $(detach "{log}" sh -c 'echo daemon up; exec sleep 300')"; }}
        stage "start a daemon" start
    """, tmp_path, timeout=60)
    pid = int(out.split("pid ")[1].split()[0])
    try:
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert fds == {0: "/dev/null", 1: str(log), 2: str(log)}
        assert os.getsid(pid) == pid, "not in a session of its own"
    finally:
        stop(pid)
    for _ in range(50):  # the daemon writes when it gets to it
        if "daemon up" in log.read_text():
            break
        time.sleep(0.1)
    assert "daemon up" in log.read_text()


def test_lanes_run_side_by_side_and_a_failed_stage_in_one_fails_the_wait(tmp_path):
    # Two lanes of two stages each; a stage of the first fails. Its lane goes on, the
    # other lane is not held up, every stage is reported, and the wait fails.
    out = harness("""
        job_name() { echo "job $1"; }
        job_run() {
            case "$1" in
                a1) sleep 3; echo "a1 done $(date +%s)" ;;
                a2) echo "a2 ran"; echo 'fatal: [mx1]: FAILED! => {"msg": "a2"}'; return 4 ;;
                b1) echo "b1 done $(date +%s)" ;;
                b2) sleep 3; echo "b2 done" ;;
            esac
        }
        start=$(date +%s)
        lane a1 a2
        lane b1 b2
        lanes_wait && echo "wait passed" || echo "wait failed"
        echo "took $(( $(date +%s) - start ))"
        printf '%s\\n' "${STAGES[@]}"
        cat "$FAILURES"
    """, tmp_path, timeout=60)
    assert "wait failed" in out
    # Side by side: three seconds in each lane, not six in a row.
    assert int(out.split("took ")[1].split()[0]) < 6, out
    recorded = [line.split()[1] for line in out.splitlines() if line.startswith("job ") and line.rstrip().endswith(("ok", "FAILED"))]
    assert recorded == ["a1", "a2", "b1", "b2"], out
    assert "a2 ran" in out and "b2 done" in out
    assert any(line.startswith("job a2") and line.endswith("FAILED") for line in out.splitlines()), out
    assert 'fatal: [mx1]: FAILED! => {"msg": "a2"}' in out


def test_a_lane_given_a_niceness_runs_its_stages_at_it_and_the_others_at_ours(tmp_path):
    # make test runs the two shorter lanes at nice 5, so the longest gets the CPU first.
    out = harness("""
        job_name() { echo "job $1"; }
        job_run() { echo "$1 nice $(ps -o ni= -p $BASHPID | tr -d ' ')"; }
        lane --nice 5 low
        lane high
        lanes_wait
    """, tmp_path, timeout=30)
    assert "low nice 5" in out, out
    assert f"high nice {os.nice(0)}" in out, out


def test_the_python_linter_reads_the_programs_the_roles_install(tmp_path):
    # ruff finds *.py files itself; the programs without the suffix (the roles' tools,
    # scripts/mail-password-hash) reach it only through this list.
    root = HARNESS.parents[1]
    listed = set(harness(f'cd "{root}" && python_programs', tmp_path, 30).split())
    python = {str(path.relative_to(root)) for pattern in ("roles/*/files/*", "lab/roles/*/files/*", "scripts/*")
              for path in root.glob(pattern)
              if path.is_file() and path.suffix != ".py" and path.read_bytes().startswith(b"#!")
              and b"python" in path.read_bytes().split(b"\n", 1)[0]}
    assert "roles/monitoring/files/mail-monitor" in python and "scripts/mail-password-hash" in python
    assert "lab/roles/labclient/files/lab-webhook" in python
    assert listed == python
    assert "scripts/check_lab.sh" not in listed and "scripts/harness.sh" not in listed
