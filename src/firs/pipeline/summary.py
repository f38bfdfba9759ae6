"""The end-of-build summary a person reads."""

from __future__ import annotations

from pathlib import Path

from .build import BuildReport

SHOW = 5


def print_summary(report: BuildReport, out: Path) -> None:
    seconds = sum(report.seconds.values())
    wall = report.seconds.get("embed stage")
    rate = report.indexed / wall if wall else 0.0
    print(f"\nindex written to {out}")
    print(
        f"  read {report.read}  indexed {report.indexed}  skipped {report.skipped}  "
        f"failed {report.failed}  in {seconds:.1f} s ({rate:.1f} images/s embedded)"
    )
    if report.views:
        seen = ", ".join(f"{count} {how}" for how, count in sorted(report.views.items(), key=lambda kv: -kv[1]))
        print(f"  catalogue images for the fine view: {seen}")
    if report.problems:
        print(f"  skipped lines ({report.skipped}):")
        for reason, count in report.skip_reasons().most_common():
            print(f"    {count:6d}  {reason}")
        for problem in report.problems[:SHOW]:
            print(f"      e.g. {problem}")
    if report.failures:
        print(f"  failed products ({report.failed}):")
        for reason, count in report.failure_reasons().most_common():
            print(f"    {count:6d}  {reason}")
        for product_id, reason in list(report.failures.items())[:SHOW]:
            print(f"      e.g. {product_id}: {reason}")
