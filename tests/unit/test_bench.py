"""make bench's accounting: recaps, package sets, memory by unit, rates, the report."""
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
import bench  # noqa: E402
import bench_load  # noqa: E402
import bench_report  # noqa: E402
import lab_report  # noqa: E402

RECAP = """
PLAY RECAP *********************************************************************
ca.example.test            : ok=3    changed=0    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
mx1.example.test           : ok=412  changed=7    unreachable=0    failed=0    skipped=58   rescued=0    ignored=0
"""


def test_recap_reads_every_host():
    hosts = bench_report.recap(RECAP)
    assert hosts["mx1.example.test"] == {"ok": 412, "changed": 7, "unreachable": 0,
                                         "failed": 0, "skipped": 58}
    assert hosts["ca.example.test"]["changed"] == 0


def test_recap_of_a_run_without_one_is_empty():
    assert bench_report.recap("ERROR! the playbook could not be found") == {}


def test_installed_keeps_only_installed_packages_without_arch():
    lines = ["ii postfix", "rc exim4-base", "ii libc6:amd64", "", "iU half-done"]
    assert bench_report.installed(lines) == {"postfix", "libc6"}


def test_cpu_spent_is_the_difference_largest_first():
    before = {"spamd.service": {"cpu_s": 10.0}, "dovecot.service": {"cpu_s": 1.0}}
    after = {"spamd.service": {"cpu_s": 70.5}, "dovecot.service": {"cpu_s": 9.0},
             "cron.service": {"cpu_s": 0.01}, "postfix.service": {"cpu_s": 12.0}}
    assert bench_report.cpu_spent(before, after) == {
        "spamd.service": 60.5, "postfix.service": 12.0, "dovecot.service": 8.0}


def load(sent, accepted, found, delivered_at, start=100.0):
    return {"name": "x", "sent": sent, "start": start, "found": found,
            "accepted_times": [start + (i + 1) * 0.5 for i in range(accepted)],
            "delivered_at": delivered_at, "refused": [], "samples": [(start, 0)]}


def test_rates_from_the_first_connection():
    accepted, delivered = bench_report.rates(load(10, 10, 10, delivered_at=110.0))
    assert accepted == pytest.approx(2.0)
    assert delivered == pytest.approx(1.0)


def test_rates_when_nothing_was_delivered():
    assert bench_report.rates(load(10, 0, 0, delivered_at=None)) == (0.0, 0.0)


def results(found=200, failures=()):
    full = load(200, 200, found, 140.0) | {"name": "port 25, full pipeline",
                                            "cpu": {"spamd.service": 60.0, "postfix.service": 8.0}}
    ceiling = load(200, 200, 200, 120.0) | {"name": "port 25, filters off"}
    return {
        "machine": {"cpus": 2, "cpu": "test cpu", "memory_gib": 24, "kernel": "6.1",
                    "docker": "20.10", "commit": "abc1234", "date": "2026-11-29 00:00 UTC"},
        "params": {"messages": 200, "size": 4096, "sessions": 10, "imap_messages": 1000},
        "image": "debian-systemd:trixie", "wall_seconds": 600.0,
        "deploy": {"seconds": 300.0, "recap": {"changed": 150}},
        "rerun": {"seconds": 60.0, "recap": {"changed": 0}},
        "floor": {"seconds": 100.0, "packages": 120, "disk_base": 200000,
                  "disk_floor": 600000, "disk_mx_deployed": 700000},
        "loads": [full, ceiling],
        "imap": {"messages": 1000,
                 "cold": {"select": 1.0, "fetch": 3.0, "headers": 1000, "page_cache_dropped": True},
                 "warm": {"select": 0.5, "fetch": 1.5, "headers": 1000}},
        "footprint": {"units": {"spamd.service": 300000, "dovecot.service": 20000},
                      "disk_mx": 720000},
        "failures": list(failures),
    }


def test_table_holds_the_ratios_side_by_side():
    text = bench_report.table(results())
    assert "| 3.00 |" in text            # 300 s deploy against a 100 s apt-get floor
    assert "| 0.20 |" in text            # the re-run against the fresh run
    assert "filters off: 2.0 / 10.0 msg/s | 1.00 / 0.50 |" in text
    assert "200/200 found" in text
    assert "| 2.00 |" in text            # IMAP cold against warm
    assert "Every message sent was found" in text
    assert "| 340 | by unit: spamd 300, postfix 40 |" in text   # CPU s per 1000 messages


def test_table_shows_missing_messages_and_failures():
    text = bench_report.table(results(found=197, failures=["port 25: 3 missing"]))
    assert "197/200 found, 3 MISSING" in text
    assert "**FAILED:** port 25: 3 missing" in text
    assert "Every message sent was found" not in text


def test_write_replaces_only_the_marked_section(tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(f"# Benchmarks\n\nintro\n\n{bench_report.BEGIN}\nold table\n"
                      f"{bench_report.END}\n\n## Tuning log\n\nkept\n")
    bench_report.write(output, results(), "new table")
    text = output.read_text()
    assert "old table" not in text and "new table" in text
    assert text.startswith("# Benchmarks\n\nintro") and text.endswith("## Tuning log\n\nkept\n")
    assert (tmp_path / "benchmarks-throughput.svg").read_text().startswith("<svg")


def test_write_creates_the_file(tmp_path):
    bench_report.write(tmp_path / "B.md", results(), "a table")
    assert "a table" in (tmp_path / "B.md").read_text()


def test_lab_password_comes_from_the_lab_inventory():
    assert lab_report.lab_passwords()["alice@example.test"] == "lab-alice-pw"


@pytest.mark.parametrize("size", [512, 4096, 65536])
def test_generated_message_has_the_size_and_the_run_header(size):
    text = bench_load.message("run1", 7, "a@spf-pass.test", "b@example.test", size)
    assert size <= len(text) < size + 200
    assert "X-Bench-Run: run1\r\n" in text
    assert "Message-ID: <bench.run1.7@spf-pass.test>" in text


def test_table_names_the_machine_yardstick_when_measured():
    assert "yardstick" not in bench_report.table(results())
    measured = results()
    measured["machine"]["yardstick"] = 0.8
    assert "best of 5): 0.80 s; lower is faster." in bench_report.table(measured)


def test_the_yardstick_is_a_perl_program_that_prints_its_time():
    out = subprocess.run(["perl", "-e", bench.YARDSTICK], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert 0 < float(out) < 60


def test_on_lab_points_at_the_labs_containers_and_keeps_under_its_sending_limit(monkeypatch):
    # Restored after the test: on_lab rebinds the module's container names.
    monkeypatch.setattr(bench, "MX", bench.MX)
    monkeypatch.setattr(bench, "CLIENT", bench.CLIENT)
    with pytest.raises(bench.BenchError, match="may send to 200 recipients an hour"):
        bench.on_lab(200)
    assert (bench.MX, bench.CLIENT) == ("mailbundle-lab-mx1", "mailbundle-lab-client")


def test_messages_are_compared_by_message_id_not_by_count():
    # As many found as accepted, yet one lost and one delivered twice.
    missing, duplicated, unexpected = bench.compare_ids(["<a>", "<b>", "<c>"], ["<a>", "<a>", "<c>"])
    assert (missing, duplicated, unexpected) == (["<b>"], ["<a>"], [])
    assert bench.compare_ids(["<a>"], ["<a>", "<z>"]) == ([], [], ["<z>"])
    assert bench.compare_ids(["<a>", "<b>"], ["<b>", "<a>"]) == ([], [], [])
