"""The index directory: one self-describing folder, written atomically.

    INDEX_DIR/
      manifest.json        format version, embedder identity, views, counts, checksums
      products.sqlite      the product store: products, their labels, a full-text index
      tags.npz             the inverted tag index: label -> ANN labels (index/postings.py)
      views/<view>/        one per search view (simple: whole photo; fine: the item alone)
        whitening.npz      the catalogue-fitted whitening (mean, projection)
        ann.faiss          the HNSW graph (faiss) over whitened vectors; label = products.idx
        features/part-*.parquet   raw features: rebuild any index without re-embedding

A build writes into a sibling temporary folder and renames it into place at the end,
so a build that fails midway leaves the previous index untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import IndexFormatError
from ..files import sha256_file

FORMAT_VERSION = 3
MANIFEST = "manifest.json"
STORE = "products.sqlite"
WHITENING = "whitening.npz"
ANN = "ann.faiss"
FEATURES = "features"
POSTINGS = "tags.npz"


def view_dir(view: str) -> str:
    return f"views/{view}"


def checksums(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file in the folder except the manifest."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            name = path.relative_to(folder).as_posix()
            files[name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return files


@contextmanager
def atomic_index_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target`."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not (target / MANIFEST).is_file() and any(target.iterdir()):
        raise IndexFormatError(f"{target} exists and is not a FIRS index (no {MANIFEST}); refusing to replace it")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    manifest = {"format_version": FORMAT_VERSION, **manifest, "files": checksums(folder)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def read_manifest(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise IndexFormatError(f"{folder}: no such index directory (build one with `firs build`)")
    if not path.is_file():
        raise IndexFormatError(f"{folder}: not a FIRS index ({MANIFEST} missing)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexFormatError(
            f"{path}: index format version {found!r}, this FIRS reads version {FORMAT_VERSION}; rebuild it"
        )
    return manifest


def verify_files(folder: Path, manifest: dict[str, Any], names: list[str], full: bool = True) -> None:
    """Check that the named files exist with the recorded size (and checksum, if `full`)."""
    recorded = manifest.get("files", {})
    for name in names:
        path = folder / name
        entry = recorded.get(name)
        if entry is None:
            raise IndexFormatError(f"{folder}: manifest lists no file {name}")
        if not path.is_file():
            raise IndexFormatError(f"{path}: missing from the index")
        if path.stat().st_size != entry["bytes"]:
            raise IndexFormatError(f"{path}: corrupt ({path.stat().st_size} bytes, manifest says {entry['bytes']})")
        if full and sha256_file(path) != entry["sha256"]:
            raise IndexFormatError(f"{path}: corrupt (checksum differs from the manifest)")
