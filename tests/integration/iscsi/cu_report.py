#!/usr/bin/python3
"""Reads the verbose output of libiscsi's iscsi-test-cu and reports it.

  cu_report.py summary LOG          "RAN PASSED FAILED" from the run summary
  cu_report.py list LOG             every test that failed or skipped, why
  cu_report.py passed LOG           the names of the tests that passed
  cu_report.py regressions OURS REF tests REF passed and OURS did not; exit 1 if any

CUnit prints "Test: NAME ...", then the messages of the test ("[SKIPPED]
why", "[FAILED] why", possibly over several lines), then "passed" or
"FAILED". A test that skips still "passes" in CUnit's tally, so skips are
listed apart: a target that skips what the other runs is visible in the
report even when both tallies say 230.
"""
import re
import sys

TOKEN = re.compile(r"Suite: (?P<suite>\S+)"
                   r"|Test: (?P<test>\S+) \.\.\."
                   r"|\[(?P<kind>SKIPPED|FAILED)\] (?P<why>[^\n]*)"
                   r"|(?<![\w\[])(?P<result>passed|FAILED)(?![\w\]])")


def parse(path):
    text = open(path, errors="replace").read()
    tests = {}  # "Suite.Test" -> {"result": ..., "skipped": [...], "failed": [...]}
    suite, current, last = "?", None, None
    for m in TOKEN.finditer(text):
        if m.group("suite"):
            suite, current = m.group("suite"), None
        elif m.group("test"):
            current = f"{suite}.{m.group('test')}"
            tests[current] = {"result": None, "skipped": [], "failed": []}
        elif m.group("kind"):
            # A message after a test's result belongs to the suite's
            # teardown; it is kept with the last test so nothing is lost.
            name = current or last
            if name:
                bucket = tests[name]["skipped" if m.group("kind") == "SKIPPED" else "failed"]
                why = m.group("why").strip()
                if why not in bucket:
                    bucket.append(why)
        elif m.group("result") and current:
            tests[current]["result"] = m.group("result")
            last, current = current, None
    summary = re.search(r"tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", text)
    return tests, summary


def main():
    what, path = sys.argv[1], sys.argv[2]
    tests, summary = parse(path)
    if not tests or not summary:
        sys.exit(f"{path}: no CUnit run summary; is this iscsi-test-cu's verbose output?")
    if what == "summary":
        total, ran, passed, failed = summary.groups()
        print(ran, passed, failed)
    elif what == "passed":
        for name, t in tests.items():
            if t["result"] == "passed":
                print(name)
    elif what == "list":
        for name, t in tests.items():
            if t["result"] != "passed":
                print(f"  FAILED  {name}: {'; '.join(t['failed']) or 'no message'}")
        for name, t in tests.items():
            if t["result"] == "passed" and t["skipped"]:
                print(f"  skipped {name}: {'; '.join(t['skipped'])}")
    elif what == "regressions":
        ref, _ = parse(sys.argv[3])
        bad = [n for n, t in ref.items() if t["result"] == "passed" and tests.get(n, {}).get("result") != "passed"]
        for n in bad:
            print(f"  {n}: passes against the reference, not here: {'; '.join(tests.get(n, {}).get('failed', [])) or 'not run'}")
        sys.exit(1 if bad else 0)
    else:
        sys.exit(f"unknown command {what}")


if __name__ == "__main__":
    main()
