"""The embedder on OpenVINO: the same numbers as PyTorch eager, pieces saved in the index and
read back instead of converted, safe from several threads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from firs.errors import IndexFormatError
from firs.index import directory as layout
from firs.search.engine import Query, SearchEngine
from firs.vision import compiled_net
from firs.vision.backbone_tail import BackboneTail
from firs.vision.embedder import Embedder


@pytest.fixture(scope="module")
def eager() -> Embedder:
    return Embedder(threads=2, runtime="torch")


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 224, 224)).astype(np.float32)


def _tuned_tails(openvino: Embedder, eager: Embedder) -> tuple[BackboneTail, BackboneTail]:
    """The same tuned tail (two blocks moved off ImageNet's weights) on both embedders' networks."""
    tail = BackboneTail(openvino.net, 2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in tail.parameters():
            if parameter.requires_grad:
                parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    twin = BackboneTail(eager.net, 2)
    twin.load_tensors(tail.tensors())
    return tail, twin


def test_openvino_gives_eager_pytorchs_numbers(embedder: Embedder, eager: Embedder) -> None:
    assert embedder.runtime == "openvino"
    batch = _batch(3)
    features, probabilities = embedder.forward(batch)
    want_features, want_probabilities = eager.forward(batch)
    assert features.shape == (3, 1280) and probabilities.shape == (3, 1000)
    assert np.abs(features - want_features).max() < 1e-4
    assert np.abs(probabilities - want_probabilities).max() < 1e-4
    assert np.abs(embedder.trunk(batch) - eager.trunk(batch)).max() < 1e-3

    tail, twin = _tuned_tails(embedder, eager)
    for classify in (True, False):
        tuned, probs = embedder.forward(batch, tail, classify)
        want_tuned, want_probs = eager.forward(batch, twin, classify)
        assert np.abs(tuned - want_tuned).max() < 1e-4
        assert probs.shape == want_probs.shape == ((3, 1000) if classify else (3, 0))
    # The tuned tail really changes the features: the test would pass trivially otherwise.
    assert np.abs(embedder.forward(batch, tail)[0] - features).max() > 1e-3


def test_features_without_labels_skip_the_classifier_and_stay_the_same(embedder: Embedder) -> None:
    """A search that needs no labels runs the tail's graph without the ImageNet classifier: the
    very same features, and the classifier's layer is not in what runs."""
    batch = _batch(2, seed=3)
    with_labels, probabilities = embedder.forward(batch)
    alone, none = embedder.forward(batch, classify=False)
    assert np.array_equal(alone, with_labels) and probabilities.shape == (2, 1000) and none.shape == (2, 0)
    piece = embedder._features_piece()
    assert [output.get_partial_shape()[1].get_length() for output in piece.model.outputs] == [1280]
    assert len(piece.model.get_ops()) < len(embedder._tail_piece(embedder.original_tail, True).model.get_ops())


def test_saved_pieces_are_read_back_not_converted(
    embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder.warm()
    pieces = embedder.save_network(tmp_path / "network")
    assert {piece.split("-")[0] for piece in pieces} == {"trunk", "tail"}
    assert all((tmp_path / "network" / f"{piece}.{ext}").is_file() for piece in pieces for ext in ("xml", "bin"))
    want = embedder.forward(_batch(2, seed=1))

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted again although the pieces were saved")

    import openvino

    monkeypatch.setattr(openvino, "convert_model", no_conversion)
    reader = Embedder(threads=2, network_dir=tmp_path / "network")
    got = reader.forward(_batch(2, seed=1))
    assert np.abs(got[0] - want[0]).max() < 1e-6 and np.abs(got[1] - want[1]).max() < 1e-6

    # Pieces are named by a digest of their weights: a folder holding other weights' pieces is
    # not used for these (here: converting is refused, so the mismatch surfaces as that).
    other = Embedder(threads=2, network_dir=tmp_path / "network")
    with torch.no_grad():
        other.net._conv_stem.weight.mul_(1.01)
    with pytest.raises(AssertionError, match="converted again"):
        other.forward(_batch(1))


def test_pieces_serve_several_threads_at_once(embedder: Embedder) -> None:
    batches = [_batch(2, seed=s) for s in range(6)]
    alone = [embedder.forward(b)[0] for b in batches]
    with ThreadPoolExecutor(max_workers=3) as pool:
        together = list(pool.map(lambda b: embedder.forward(b)[0], batches * 3))
    for number, features in enumerate(together):
        assert np.abs(features - alone[number % len(batches)]).max() < 1e-6


def test_an_index_carries_its_network_checked_like_every_file(
    garment_index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    manifest = json.loads((garment_index / layout.MANIFEST).read_text())
    network = manifest["network"]
    assert network["runtime"] == "openvino" and network["precision"] == compiled_net.PRECISION
    files = layout.network_files(manifest)
    assert files and all(name in manifest["files"] for name in files)

    own = SearchEngine(garment_index)  # its own embedder, reading the pieces from the index
    assert own.embedder.network.folder == garment_index.resolve() / layout.NETWORK
    shared = SearchEngine(garment_index, embedder=embedder)
    photo = sorted((garment_catalog.parent / "img").glob("*.png"))[3]
    ids = [[r["id"] for r in engine.search(Query(image=photo, k=5)).results] for engine in (own, shared)]
    assert ids[0] == ids[1]

    copy = tmp_path / "copy"
    shutil.copytree(garment_index.resolve(), copy)
    piece = copy / next(name for name in files if name.endswith(".bin"))
    data = bytearray(piece.read_bytes())
    data[len(data) // 2] ^= 0xFF
    piece.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum"):
        SearchEngine(copy, embedder=embedder)


def test_a_fresh_process_runs_pieces_from_two_threads_at_once(tmp_path: Path) -> None:
    """Two threads making their first forward at the same instant must not deadlock (OpenVINO's
    bindings set up NumPy access lazily; the pieces do it when compiled, in one thread)."""
    script = tmp_path / "two_threads.py"
    script.write_text(
        "import threading\n"
        "import numpy as np\n"
        "from firs.vision.embedder import Embedder\n"
        "embedder = Embedder(threads=1)\n"
        "embedder.warm()\n"
        "start = threading.Barrier(2)\n"
        "def run():\n"
        "    start.wait()\n"
        "    embedder.forward(np.zeros((1, 3, 224, 224), np.float32))\n"
        "threads = [threading.Thread(target=run) for _ in range(2)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print('done')\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]
