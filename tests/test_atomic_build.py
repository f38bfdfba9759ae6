"""The index path always holds a complete index: across kill -9, SIGTERM, a crash between two
system calls, and over an index folder made before versions; leftovers are cleaned up."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firs.index import directory as layout
from firs.pipeline.build import BuildOptions, build_index
from firs.search.engine import SearchEngine
from firs.vision.embedder import Embedder


def _versions(target: Path) -> list[Path]:
    folder = layout.versions_dir(target)
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _start_build(catalog: Path, target: Path, cache: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "firs.cli", "build", str(catalog), "--out", str(target), "--quiet"]
    return subprocess.Popen([*command, "--cache-dir", str(cache)], stderr=subprocess.PIPE)


def _wait_for_staging(process: subprocess.Popen[bytes], target: Path) -> Path:
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        mine = [v for v in _versions(target) if f"-{process.pid}-" in v.name]
        if mine:
            time.sleep(1.0)  # well into reading, fetching and embedding
            assert process.poll() is None, "the build ended before it could be interrupted"
            return mine[0]
        time.sleep(0.05)
    raise AssertionError(f"the build never started its folder (exit {process.poll()})")


@pytest.fixture(scope="module")
def long_catalog(garment_catalog: Path) -> Path:
    """The garments 20 times over (480 products): a build that is still embedding seconds after
    it starts, on a fast host too."""
    path = garment_catalog.with_name("long.csv")
    with garment_catalog.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([f"{row[0]}-{copy}", *row[1:]] for copy in range(20) for row in rows)
    return path


@pytest.fixture
def target(garment_index: Path, tmp_path: Path) -> Path:
    """A published index to interrupt builds over (a copy of the session's)."""
    out = tmp_path / "index"
    shutil.copytree(garment_index, out)  # a plain folder, as made before versions
    return out


def test_kill_9_leaves_the_old_index_and_the_next_build_cleans_up(
    target: Path, garment_catalog: Path, long_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    before = (target / layout.MANIFEST).read_text()
    process = _start_build(long_catalog, target, tmp_path / "cache")
    staging = _wait_for_staging(process, target)
    process.kill()
    process.wait(30)
    assert (target / layout.MANIFEST).read_text() == before
    assert SearchEngine(target, embedder).store.count() == 24
    assert staging.exists()  # what the killed build left
    build_index([garment_catalog], target, BuildOptions(progress=False, cache_dir=tmp_path / "cache"), embedder)
    assert target.is_symlink() and _versions(target) == [target.resolve()]
    assert SearchEngine(target, embedder).store.count() == 24


def test_sigterm_removes_the_half_made_index(target: Path, long_catalog: Path, tmp_path: Path) -> None:
    before = (target / layout.MANIFEST).read_text()
    process = _start_build(long_catalog, target, tmp_path / "cache")
    staging = _wait_for_staging(process, target)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    assert b"interrupted" in stderr and b"Traceback" not in stderr
    assert not staging.exists() and (target / layout.MANIFEST).read_text() == before


def test_a_crash_between_any_two_steps_of_the_swap_leaves_an_index(
    garment_index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "index"
    options = BuildOptions(progress=False, cache_dir=tmp_path / "cache")
    build_index([garment_catalog], target, options, embedder)  # a versioned index: target is a link
    first = target.resolve()
    real_replace, real_symlink = os.replace, os.symlink
    for step in ("symlink", "replace"):

        def crash(*args: object, step: str = step) -> None:
            raise OSError(f"simulated crash at {step}")

        monkeypatch.setattr(layout.os, step, crash)
        with pytest.raises(OSError, match="simulated crash"):
            build_index([garment_catalog], target, options, embedder)
        monkeypatch.setattr(layout.os, "replace", real_replace)
        monkeypatch.setattr(layout.os, "symlink", real_symlink)
        assert target.resolve() == first and SearchEngine(target, embedder).store.count() == 24
    build_index([garment_catalog], target, options, embedder)
    assert target.resolve() != first and _versions(target) == [target.resolve()]
    assert not list(tmp_path.glob(".index.link-*"))


def test_a_lost_link_is_restored_from_the_newest_complete_version(
    garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    target = tmp_path / "index"
    build_index([garment_catalog], target, BuildOptions(progress=False, cache_dir=tmp_path / "cache"), embedder)
    version = target.resolve()
    target.unlink()  # as if the machine died between moving an old folder aside and linking
    layout.clean_leftovers(target)
    assert target.resolve() == version and (target / layout.MANIFEST).is_file()


def test_a_pre_version_index_folder_is_swapped_in_one_step(
    target: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    assert target.is_dir() and not target.is_symlink()
    build_index([garment_catalog], target, BuildOptions(progress=False, cache_dir=tmp_path / "cache"), embedder)
    assert target.is_symlink() and _versions(target) == [target.resolve()]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".index")) == [".index.versions"]
