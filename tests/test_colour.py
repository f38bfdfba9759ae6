"""The garment's colour signature: what it measures, and fused into the fine view's vectors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from firs.cli import main
from firs.demo.garments import COLOURS, GarmentSpec, draw_garment
from firs.errors import IndexFormatError
from firs.index import colour_fusion
from firs.index import directory as layout
from firs.index.shards import colour_column, read_column
from firs.index.whitening import Whitening
from firs.search.engine import Query, SearchEngine
from firs.vision import colour_signature
from firs.vision.colour_signature import (
    BINS,
    DEFAULT_KIND,
    LAB_SIZE,
    LEGACY_KIND,
    SIZE,
    colour_signatures,
    garment_pixels,
    signature,
    signatures,
)
from firs.vision.embedder import Embedder, prepare

from .conftest import jpeg_bytes


def _signature(image: Image.Image, embedder: Embedder) -> np.ndarray:
    return colour_signatures(embedder.prepare(image, "crop")[None])[0]


def test_signature_tells_navy_from_black(embedder: Embedder) -> None:
    navy, black = (draw_garment(GarmentSpec("t-shirt", colour, "solid")) for colour in ("navy", "black"))
    navy_again = draw_garment(GarmentSpec("t-shirt", "navy", "solid"), style=1)  # shaded, another outline
    signatures = {name: _signature(image, embedder) for name, image in [("navy", navy), ("black", black)]}
    assert all(abs(np.linalg.norm(s) - 1) < 1e-5 for s in signatures.values())
    assert float(signatures["navy"] @ _signature(navy_again, embedder)) > 0.5
    assert float(signatures["navy"] @ signatures["black"]) < 0.3
    blank = _signature(Image.new("RGB", (64, 64), (255, 255, 255)), embedder)
    assert blank.shape == (SIZE,) and not blank.any()  # nothing but backdrop: no colour at all


def test_default_signature_tells_colours_and_patterns_apart(embedder: Embedder) -> None:
    """Its colour half (Lab cells) tells navy from black; its pattern half (local binary
    patterns) tells stripes from a plain cloth of the same colour."""

    def of(colour: str, pattern: str, style: int = 0) -> np.ndarray:
        picture = draw_garment(GarmentSpec("t-shirt", colour, pattern), style=style)
        return signatures(embedder.prepare(picture, "crop")[None])[0]

    navy, black, striped = of("navy", "solid"), of("black", "solid"), of("navy", "striped")
    assert navy.shape == (colour_signature.size(DEFAULT_KIND),) and abs(np.linalg.norm(navy) - 1) < 1e-5
    colour, pattern = slice(0, LAB_SIZE), slice(LAB_SIZE, None)

    def cosine(a: np.ndarray, b: np.ndarray, half: slice) -> float:
        return 2 * float(a[half] @ b[half])  # each half is √½ long

    navy_shaded = of("navy", "solid", style=1)  # shaded, another outline
    assert cosine(navy, navy_shaded, colour) > 0.5 and cosine(navy, black, colour) < 0.1
    assert cosine(navy, black, pattern) > cosine(navy, striped, pattern) + 0.2  # plain cloths alike
    assert float(navy @ navy_shaded) > float(navy @ black)
    assert not signatures(embedder.prepare(Image.new("RGB", (64, 64), "white"), "crop")[None]).any()


def test_an_index_names_the_kind_of_its_signatures() -> None:
    """Indexes made before there were kinds hold RGB signatures; a kind nobody knows is refused."""
    views = {"fine": {"colour": {"weight": 0.4}}}
    assert colour_fusion.signature_kind({"views": views}, "fine") == LEGACY_KIND
    assert colour_fusion.signature_kind({"views": {"fine": {}}}, "fine") == LEGACY_KIND
    named = {"views": {"fine": {}}, "shards": {"signature": DEFAULT_KIND}}  # also with no colour weight
    assert colour_fusion.signature_kind(named, "fine") == DEFAULT_KIND
    with pytest.raises(ValueError, match="unknown garment signature kind 'hsv'"):
        colour_fusion.signature_kind({"views": {"fine": {"colour": {"kind": "hsv"}}}}, "fine")


def test_signature_bins_every_garment_pixel_by_its_colour() -> None:
    """The fast path gives exactly the histogram of `garment_pixels` binned, for every value a
    channel can take, white backdrop and padding included."""
    rng = np.random.default_rng(3)
    noise = Image.fromarray(rng.integers(0, 256, (300, 260, 3), dtype=np.uint8))
    x, y = np.meshgrid(np.arange(256), np.arange(256))
    ramp = Image.fromarray(np.stack([x, y, (x + y) % 256], axis=-1).astype(np.uint8))
    batch = np.stack([prepare(image, 224, policy) for image in (noise, ramp) for policy in ("pad", "crop")])
    expected = []
    for pixels in garment_pixels(batch):
        cells = (pixels * BINS).astype(np.int64)
        expected.append(signature(np.bincount((cells[:, 0] * BINS + cells[:, 1]) * BINS + cells[:, 2], minlength=SIZE)))
    assert np.array_equal(colour_signatures(batch), np.stack(expected))


def test_the_lab_table_is_made_without_leaving_hundreds_of_megabytes_resident() -> None:
    """The tuned allocator keeps what a process frees: the table's temporaries once stayed in
    every `firs serve` and build (+340 MB). In a fresh process, as `firs` starts."""
    script = (
        "from firs.runtime import tune_allocator; tune_allocator()\n"
        "import numpy as np\n"
        "from firs.vision import colour_signature\n"
        "rss = lambda: int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) // 1024\n"
        "before = rss(); table = colour_signature._lab_lut(); print(rss() - before, table.shape[0])\n"
    )
    grown, entries = map(
        int, subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    )
    assert entries == 1 << 21 and grown < 64, f"building the Lab table left {grown} MB resident"


def test_fused_inner_product_is_the_weighted_score() -> None:
    rng = np.random.default_rng(0)
    e = rng.standard_normal((2, 16)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    s = rng.random((2, SIZE)).astype(np.float32)
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    for weight in (0.0, 0.4, 2.0):
        fused = colour_fusion.fuse(e, s, weight)
        assert fused.shape == (2, 16 + SIZE)
        expected = (e[0] @ e[1] + weight * (s[0] @ s[1])) / (1 + weight)
        assert float(fused[0] @ fused[1]) == pytest.approx(float(expected), abs=1e-5)
        assert np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="colour weight"):
        colour_fusion.check_weight(-1)


@pytest.fixture(scope="module")
def same_cut_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same t-shirt and dress in every colour: only colour tells them apart."""
    folder = tmp_path_factory.mktemp("colours")
    with (folder / "catalog.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image", "title"])
        for kind in ("t-shirt", "dress"):
            for colour in COLOURS:
                spec = GarmentSpec(kind, colour, "solid")
                draw_garment(spec).save(folder / f"{spec.product_id}.png")
                writer.writerow([spec.product_id, f"{spec.product_id}.png", spec.title])
    return folder / "catalog.csv"


def test_fine_view_carries_the_colour_and_ranks_by_it(
    same_cut_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    assert main(["build", str(same_cut_catalog), "--out", str(out), "--quiet", "--cache-dir", str(tmp_path)]) == 0
    manifest = json.loads((out / layout.MANIFEST).read_text())
    fine, size = manifest["views"]["fine"], colour_signature.size(DEFAULT_KIND)
    assert fine["colour"]["weight"] == colour_fusion.UNTRAINED_WEIGHT  # no model: the ImageNet features
    assert fine["colour"]["kind"] == manifest["shards"]["signature"] == DEFAULT_KIND
    assert fine["dim"] == fine["whitening"]["dim"] + size and "colour" not in manifest["views"]["simple"]
    folder = out / layout.view_dir("fine")
    ids, features = read_column(out / layout.SHARDS, "fine")
    stored_signatures = read_column(out / layout.SHARDS, colour_column("fine"))[1]
    assert stored_signatures.shape == (12, size)
    whitened = Whitening.load(folder / layout.WHITENING).apply(features)
    expected = colour_fusion.fuse(whitened, stored_signatures, colour_fusion.UNTRAINED_WEIGHT)
    engine = SearchEngine(out, embedder)
    stored = np.stack([engine.views["fine"].ann.vector(engine.store.label_of(i)) for i in ids])
    assert np.allclose(stored, expected, atol=1e-5)  # the ANN holds exactly the fused vectors

    for colour in ("navy", "black", "red", "pink"):
        spec = GarmentSpec("t-shirt", colour, "solid")
        query = jpeg_bytes(draw_garment(spec, style=1).resize((300, 300)))
        results = engine.search(Query(image=query, mode="fine", k=3)).results
        assert results[0]["id"] == spec.product_id, (colour, [r["id"] for r in results])

    legacy = json.loads(json.dumps(manifest))  # as the previous format wrote it: no kind anywhere
    legacy["format_version"] = 5
    del legacy["shards"]["signature"], legacy["views"]["fine"]["colour"]["kind"]
    (out / layout.MANIFEST).write_text(json.dumps(legacy))
    assert SearchEngine(out, embedder).views["fine"].signature == LEGACY_KIND
    manifest["shards"]["signature"] = "hsv"  # a kind this version does not know
    (out / layout.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="unknown garment signature kind 'hsv'"):
        SearchEngine(out, embedder)


def test_colour_weight_zero_leaves_the_plain_embedding(same_cut_catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    argv = ["build", str(same_cut_catalog), "--out", str(out), "--quiet", "--cache-dir", str(tmp_path)]
    assert main([*argv, "--colour-weight", "0"]) == 0
    fine = json.loads((out / layout.MANIFEST).read_text())["views"]["fine"]
    assert "colour" not in fine and fine["dim"] == fine["whitening"]["dim"]
    assert main([*argv, "--colour-weight", "-1"]) == 2
