"""Summarise a schemathesis NDJSON report: cases, and the statuses each
operation answered with (to show that authenticated success paths were
exercised, not only refusals).

Usage: python summary.py REPORT.ndjson [--require-success OP ...]
Exits non-zero when an operation named after --require-success never
answered 2xx.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict


def main(argv: list[str]) -> int:
    path, *rest = argv
    required = rest[1:] if rest[:1] == ["--require-success"] else []
    statuses: dict[str, Counter] = defaultdict(Counter)
    cases = 0
    failed_checks = 0
    with open(path, encoding="utf-8") as report:
        for line in report:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            label = recorder["label"]
            cases += len(recorder.get("cases", {}))
            for checks in recorder.get("checks", {}).values():
                failed_checks += sum(1 for check in checks if check["status"] == "failure")
            for interaction in recorder.get("interactions", {}).values():
                response = interaction.get("response")
                if response:
                    statuses[label][response["status_code"]] += 1
    width = max(map(len, statuses), default=0)
    for label in sorted(statuses, key=lambda l: l.split(" ", 1)[::-1]):
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(statuses[label].items()))
        print(f"  {label:<{width}}  {counts}")
    print(f"schemathesis: {cases} cases recorded, {failed_checks} failed checks")
    missing = [
        label
        for label in required
        if not any(200 <= status < 300 for status in statuses.get(label, {}))
    ]
    for label in missing:
        print(f"never answered 2xx: {label}", file=sys.stderr)
    return 1 if missing or failed_checks else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
