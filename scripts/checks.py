#!/usr/bin/env python3
"""The checks a test stage must run, compared with what it ran.

  checks.py verify STAGE JUNIT-XML   compare tests/checks/STAGE.txt with the results
  checks.py list JUNIT-XML           print the ids of a results file, sorted (to write a list)

Each stage that runs pytest (the unit tests, each Molecule scenario on each release)
writes JUnit XML; its list in tests/checks/ holds one check id per line
("module::test_name[parameters]"; "#" starts a comment). verify prints the counts
(run, passed, failed, skipped) and fails, naming each one, when a listed check did not
run (no longer collected, renamed, deselected), was skipped, or ran without being
listed. Adding a check means adding its id; removing one means removing its id.
"""

import os
import pathlib
import sys
import xml.etree.ElementTree as ElementTree

# CHECKS_LISTS moves the lists (the unit tests use their own).
LISTS = pathlib.Path(os.environ.get("CHECKS_LISTS", pathlib.Path(__file__).resolve().parents[1] / "tests" / "checks"))


def results(junit):
    """{check id: outcome} from a JUnit XML file (passed, failed, error or skipped)."""
    outcomes = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):  # noqa: S314 (pytest's own report)
        module = case.get("classname", "").rsplit(".", 1)[-1]
        check = f"{module}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "failed" if child.tag == "failure" else child.tag
                break
        # A check that passed and then errored in teardown is reported twice.
        if outcomes.get(check, "passed") == "passed":
            outcomes[check] = outcome
    return outcomes


def expected(stage):
    path = LISTS / f"{stage}.txt"
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


def compare(want, got):
    """The problems, one line each: listed but not run, skipped, run but not listed."""
    problems = [f"not run: {check}" for check in sorted(want - set(got))]
    problems += [f"skipped: {check}" for check in sorted(c for c, o in got.items() if o == "skipped" and c in want)]
    problems += [f"not in the list: {check}" for check in sorted(set(got) - want)]
    return problems


def counts(got):
    run = sum(1 for outcome in got.values() if outcome != "skipped")
    passed = sum(1 for outcome in got.values() if outcome == "passed")
    return run, passed, run - passed, len(got) - run


def verify(stage, junit):
    path = pathlib.Path(junit)
    if not path.exists():
        print(f"checks of {stage}: no results ({junit}): the stage ended before its checks ran")
        return 1
    got = results(path)
    run, passed, failed, skipped = counts(got)
    # For the harness's summary: run, passed, failed, skipped.
    path.with_suffix(".counts").write_text(f"{run} {passed} {failed} {skipped}\n")
    want = expected(stage)
    print(f"checks of {stage}: {run} run, {passed} passed, {failed} failed, {skipped} skipped"
          f" (list: tests/checks/{stage}.txt, {len(want)} checks)")
    problems = compare(want, got)
    for problem in problems:
        print(f"checks of {stage}: {problem}")
    if problems:
        print(f"checks of {stage}: the checks that ran differ from tests/checks/{stage}.txt;"
              f" a new or removed check changes the list too")
    return 1 if problems else 0


def main(argv):
    if len(argv) == 3 and argv[0] == "verify":
        return verify(argv[1], argv[2])
    if len(argv) == 2 and argv[0] == "list":
        print("\n".join(sorted(results(argv[1]))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
