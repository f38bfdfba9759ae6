"""The end-of-build summary a person reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..index.directory import ANN, read_manifest, view_dir
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
    if report.indexed:
        print(f"  {_footprint_line(read_manifest(out), report.indexed)}")
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


def footprint(manifest: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """The index's bytes on disk, and each view's ANN file among them: its vectors and graph,
    what `firs train --dim` and the whitening's dimensions change."""
    files = manifest.get("files", {})
    views = {view: files.get(f"{view_dir(view)}/{ANN}", {}).get("bytes", 0) for view in manifest.get("views", {})}
    return sum(entry["bytes"] for entry in files.values()), views


def _footprint_line(manifest: dict[str, Any], products: int) -> str:
    total, views = footprint(manifest)
    each = ", ".join(f"{view} {size / products / 1e3:.1f} kB" for view, size in views.items())
    return f"on disk {total / 1e6:.1f} MB, {total / products / 1e3:.1f} kB a product (vectors and graph: {each})"
