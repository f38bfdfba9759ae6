"""The index directory: one self-describing folder, written atomically.

    INDEX_DIR/
      manifest.json        format version, embedder identity, views, counts, checksums
      products.sqlite      the product store: products, their labels, a full-text index
      tags.npz             the inverted tag index: label -> ANN labels (index/postings.py)
      images.sqlite        the product pictures the service sends (index/images.py)
      model/               the `firs train` model the index was built with, if any
      network/<piece>.xml|.bin   the embedder's network converted for OpenVINO (vision/compiled_net.py),
                           read at start instead of converted again; named by a digest of its weights
      shards/part-*.parquet   the embed stage's output, one per catalogue partition: raw features of
                           every view, colour signatures, picture labels (index/shards.py) —
                           any index rebuilds from them without re-embedding (`firs reindex`)
      views/<view>/        one per search view (simple: whole photo; fine: the item alone)
        whitening.npz      the catalogue-fitted whitening (mean, projection), or a model's catalogue head
        query.npz          with a model: its query head (photos are mapped by it, products by whitening.npz)
        ann.faiss          the HNSW graph (faiss) over whitened vectors; label = products.idx

INDEX_DIR is a symlink to one build in `.INDEX_DIR.versions/`; a build writes a new
folder there and swaps the link in one rename at the end, so the path always holds a
complete index, and a build that fails midway leaves the previous one untouched.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import IndexFormatError
from ..files import sha256_file

FORMAT_VERSION = 6  # 6: the garment signature names its kind (shards.signature); 5: shards in shards/
READABLE_VERSIONS = (5, 6)  # a version 5 index holds RGB signatures (vision/colour_signature.py LEGACY_KIND)
MANIFEST = "manifest.json"
STORE = "products.sqlite"
WHITENING = "whitening.npz"
ANN = "ann.faiss"
SHARDS = "shards"
POSTINGS = "tags.npz"
IMAGES = "images.sqlite"
QUERY_MAP = "query.npz"  # a view's query-side map, when a trained model gives one
MODEL_DIR = "model"  # the trained model an index was built with, copied in
NETWORK = "network"  # the embedder's converted pieces (OpenVINO IR)


def network_files(manifest: dict[str, Any]) -> list[str]:
    """The files of the converted network pieces the manifest lists (none for older indexes)."""
    pieces = manifest.get("network", {}).get("pieces", [])
    return [f"{NETWORK}/{piece}.{ext}" for piece in pieces for ext in ("xml", "bin")]


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


def versions_dir(target: Path) -> Path:
    """Where the builds of `target` live; `target` itself is a symlink to one of them."""
    return target.parent / f".{target.name}.versions"


def _pid_alive(name: str) -> bool:
    """Whether the process that named a folder `STAMP-PID-...` still runs."""
    parts = name.split("-")
    if len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) <= 0:
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(target: Path) -> list[Path]:
    """Remove what interrupted builds of `target` left (staging folders of dead processes,
    versions nothing points to, half-made links); if `target` itself is gone, point it at
    the newest complete version first. Returns what was removed."""
    versions = versions_dir(target)
    live = target.resolve() if target.is_symlink() else None
    if not target.exists() and not target.is_symlink() and versions.is_dir():
        complete = sorted(v for v in versions.iterdir() if (v / MANIFEST).is_file())
        if complete:
            _point(target, complete[-1])
            live = complete[-1].resolve()
    removed: list[Path] = []
    candidates = list(versions.iterdir()) if versions.is_dir() else []
    candidates += [*target.parent.glob(f".{target.name}.link-*"), *target.parent.glob(f".{target.name}.building-*")]
    for path in candidates:
        if path.resolve() == live or (path.parent == versions and _pid_alive(path.name)):
            continue
        if path.name.startswith(f".{target.name}.link-") and _pid_alive("x-" + path.name.rsplit("-", 1)[1]):
            continue
        _remove(path)
        removed.append(path)
    return removed


def _fsync(path: Path) -> None:
    """A file, or a folder's entries, on disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Every file and folder of a finished build on disk before it is published."""
    for path in [*folder.rglob("*"), folder]:
        _fsync(path)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _point(target: Path, version: Path) -> Path | None:
    """Make `target` a symlink to `version` in one atomic step (rename over the old link).
    Returns where a real folder that stood at `target` went, if one did."""
    link = target.parent / f".{target.name}.link-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(os.path.relpath(version, target.parent), link)
    if target.is_dir() and not target.is_symlink():
        # An index folder from before versions (or copied in by hand): swap it with the link
        # atomically where the system can; else move it aside first (the next build repairs
        # a crash between the two steps, see clean_leftovers).
        displaced = versions_dir(target) / f"00000000T000000-0-{target.name}"
        if _exchange(link, target):
            os.replace(link, displaced)
        else:
            os.replace(target, displaced)
            os.replace(link, target)
    else:
        displaced = None
        os.replace(link, target)
    _fsync(target.parent)
    return displaced


@contextmanager
def atomic_index_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh folder for a build of `target`; on success `target` points to it.

    `target` is a symlink into `.NAME.versions/`, swapped by one rename, so the path holds
    a complete index, the old or the new, whenever the build is interrupted (even kill -9 or
    a power cut). A failed or interrupted build removes its folder; what a killed one left
    is removed by the next build.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    target = target.parent.resolve() / target.name
    if target.is_dir() and not target.is_symlink() and not (target / MANIFEST).is_file() and any(target.iterdir()):
        raise IndexFormatError(f"{target} exists and is not a FIRS index (no {MANIFEST}); refusing to replace it")
    if target.exists() and not target.is_dir():
        raise IndexFormatError(f"{target} exists and is not a folder; refusing to replace it")
    clean_leftovers(target)
    versions = versions_dir(target)
    versions.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    staging = Path(tempfile.mkdtemp(prefix=f"{stamp}-{os.getpid()}-", dir=versions))
    try:
        yield staging
        _fsync_tree(staging)
        previous = target.resolve() if target.is_symlink() else None
        displaced = _point(target, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        with suppress(OSError):
            versions.rmdir()  # only if empty: no other build and no live version
        raise
    if previous is not None and previous.parent == versions.resolve() and previous != staging.resolve():
        displaced = previous
    if displaced is not None:
        shutil.rmtree(displaced, ignore_errors=True)


LIVE_FILES = (STORE, IMAGES)  # the files `firs add`/`remove` change in place


def mark_live(folder: Path) -> None:
    """Before the first change in place: the manifest stops vouching for the stores' bytes
    (SQLite keeps them consistent from then on) and says since when the index is live. Written
    to a temporary name and renamed, so a crash leaves the old manifest or the new one."""
    manifest = read_manifest(folder)
    if "live" in manifest:
        return
    manifest["live"] = {"since": datetime.now(UTC).isoformat(timespec="seconds"), "files": list(LIVE_FILES)}
    manifest["files"] = {name: entry for name, entry in manifest["files"].items() if name not in LIVE_FILES}
    temporary = folder / f".{MANIFEST}.{os.getpid()}"
    with temporary.open("w") as handle:
        handle.write(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / MANIFEST)
    _fsync(folder)


def link_or_copy(source: Path, target: Path) -> None:
    """A file of one index version carried into the next unchanged: a hard link where the file
    system allows (no bytes copied; versions never change a file in place), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


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
    if not isinstance(manifest, dict) or manifest.get("format_version") not in READABLE_VERSIONS:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexFormatError(
            f"{path}: index format version {found!r}, this FIRS reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}; rebuild it with `firs build`"
        )
    return manifest


def verify_files(folder: Path, manifest: dict[str, Any], names: list[str], full: bool = True) -> None:
    """Check that the named files exist with the recorded size (and checksum, if `full`)."""
    recorded = manifest.get("files", {})
    live = set(manifest.get("live", {}).get("files", []))
    for name in names:
        path = folder / name
        if name in live:  # changed in place by `firs add`/`remove`: SQLite vouches for it
            if not path.is_file():
                raise IndexFormatError(f"{path}: missing from the index")
            continue
        entry = recorded.get(name)
        if entry is None:
            raise IndexFormatError(f"{folder}: manifest lists no file {name}")
        if not path.is_file():
            raise IndexFormatError(f"{path}: missing from the index")
        if path.stat().st_size != entry["bytes"]:
            raise IndexFormatError(f"{path}: corrupt ({path.stat().st_size} bytes, manifest says {entry['bytes']})")
        if full and sha256_file(path) != entry["sha256"]:
            raise IndexFormatError(f"{path}: corrupt (checksum differs from the manifest)")
