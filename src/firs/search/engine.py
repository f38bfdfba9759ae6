"""Opening an index and answering queries: photos (modes simple, fine, tag), words, more
like this, each with optional filters."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..catalog.store import ProductStore
from ..errors import FirsError, IndexFormatError, QueryError
from ..index import colour_fusion, shards
from ..index import directory as layout
from ..index.ann import AnnIndex, HnswParams
from ..index.images import ImageStore
from ..index.live_ann import LiveAnn
from ..index.model_dir import HEAD, TrainedModel
from ..index.postings import Postings
from ..index.whitening import Whitening
from ..tagging.vocabulary import region_of
from ..vision import colour_signature
from ..vision.backbone_tail import Tail
from ..vision.decode import Photo, decode_image, decode_photo, read_bytes
from ..vision.embedder import Embedder, EmbedderSpec
from ..vision.localiser import CLOSER_SIDE, REGION_CHOICES, GarmentLocaliser
from ..vision.resample import PILLOW, check_resample
from .filters import Condition
from .tag_policy import VOTERS, Neighbour, query_tags, tag_candidates, vote_types

MODES = ("simple", "fine", "tag")
MAX_K = 1000
TRUSTED_SOURCES = ("metadata", "title")  # labels a catalogue gave, not ones read off its pictures
# (result field, label kind, metadata keys that already name it)
_NORMALISED = (
    ("color", "colour:", ("colour", "baseColour", "base_colour")),
    ("type", "type:", ("articleType", "article_type")),
)
# Identity keys that must match between the index and the running embedder.
_IDENTITY_KEYS = ("model", "input_size", "resize", "resample", "pooling", "gem_p", "weights_sha256", "feature_dim")


@dataclass
class SearchAnswer:
    results: list[dict[str, Any]]
    timings_ms: dict[str, float]
    mode: str = "simple"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, **self.extra, "results": self.results, "timings_ms": self.timings_ms}


@dataclass
class Query:
    """One search: a photo (or words alone, or a product id for more like this), refined by
    words and filters."""

    image: bytes | str | Path | None = None
    text: str | None = None
    like: str | None = None
    mode: str = "simple"
    k: int = 10
    region: str = "auto"
    all_items: bool = False
    where: list[Condition] = field(default_factory=list)

    def check(self, engine: SearchEngine) -> None:
        if self.image is None and self.like is None and not (self.text and self.text.strip()):
            raise QueryError("nothing to search with: give a photo, words (text) or a product id (like)")
        if self.image is not None and self.like is not None:
            raise QueryError("give a photo or a product id (like), not both")
        if self.mode not in MODES:
            raise QueryError(f"unknown mode {self.mode!r}; available: {', '.join(MODES)}")
        if self.region not in REGION_CHOICES:
            raise QueryError(f"unknown region {self.region!r}; available: {', '.join(REGION_CHOICES)}")
        if not 1 <= self.k <= MAX_K:
            raise QueryError(f"top-k must be between 1 and {MAX_K}, got {self.k}")
        if self.mode in ("fine", "tag") and "fine" not in engine.views:
            raise QueryError(f"{engine.index_dir} has no fine view; rebuild it with this FIRS")


def _region_answer(region: dict[str, Any], photo: Photo) -> dict[str, Any]:
    """A region as answered: its box in the uploaded image's own pixels (after EXIF orientation)."""
    return {**region, "box": photo.to_original(region["box"])}


class _Clock:
    """Per-stage wall-clock timings in milliseconds."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = round((now - self.last) * 1000, 2)
        self.last = now

    def add(self, stage: str) -> None:
        """Like lap, but adds to the stage (a stage repeated per garment)."""
        now = time.perf_counter()
        self.stages[stage] = round(self.stages.get(stage, 0.0) + (now - self.last) * 1000, 2)
        self.last = now

    def done(self) -> dict[str, float]:
        self.stages["total"] = round((time.perf_counter() - self.start) * 1000, 2)
        return self.stages


def check_embedder(manifest: dict[str, Any], embedder: Embedder, where: Path) -> None:
    """An index built by another embedder or preprocessing is refused, naming the difference."""
    built = _built_embedder(manifest)
    running = embedder.identity
    differences = [
        f"{key}: index {built.get(key)!r}, running {running.get(key)!r}"
        for key in _IDENTITY_KEYS
        if built.get(key) != running.get(key)
    ]
    if differences:
        raise IndexFormatError(
            f"{where} was built with a different embedder; rebuild the index or run the "
            f"matching FIRS ({'; '.join(differences)})"
        )


def _built_embedder(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's embedder section; one written before resampling was recorded used Pillow's."""
    built = manifest.get("embedder")
    return {"resample": PILLOW, **built} if isinstance(built, dict) else {}


def spec_from_manifest(manifest: dict[str, Any], where: Path) -> EmbedderSpec:
    built = _built_embedder(manifest)
    if not built:
        raise IndexFormatError(f"{where}: manifest has no embedder section")
    try:
        check_resample(built["resample"])
    except FirsError as exc:
        raise IndexFormatError(f"{where}: manifest embedder section: {exc}") from None
    try:
        return EmbedderSpec(
            model=built["model"],
            input_size=int(built["input_size"]),
            resize=built["resize"],
            pooling=built["pooling"],
            gem_p=float(built["gem_p"]),
            resample=built["resample"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexFormatError(f"{where}: manifest embedder section is incomplete ({exc})") from None


@dataclass
class _View:
    whitening: Whitening  # maps catalogue features (and photos, unless `query` is set)
    ann: LiveAnn  # the built graph with what `firs add`/`remove` changed since (index/live_ann.py)
    query: Whitening | None = None  # a trained model's query head
    colour_weight: float = 0.0  # the colour signature's share of the vectors (index/colour_fusion.py)
    signature: str = colour_signature.LEGACY_KIND  # the kind of garment signature beside the embedding
    tail: Tail | None = None  # a trained model's tuned backbone blocks

    @property
    def photo_map(self) -> Whitening:
        return self.query or self.whitening


def _tuned(params: HnswParams, info: dict[str, Any]) -> HnswParams:
    """The index's HNSW settings with the efSearch the build tuned for this view (indexes built
    before the tuning keep the index-wide one)."""
    ef_search = info.get("search", {}).get("ef_search")
    return params if ef_search is None else replace(params, ef_search=int(ef_search))


def _colour_weight(info: dict[str, Any], folder: Path) -> float:
    colour = info.get("colour")
    if colour is None:
        return 0.0
    try:
        return colour_fusion.check_weight(float(colour["weight"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexFormatError(f"{folder}: the manifest's colour section is unreadable ({exc})") from None


def _signature_kind(manifest: dict[str, Any], view: str, folder: Path) -> str:
    try:
        return colour_fusion.signature_kind(manifest, view)
    except ValueError as exc:
        raise IndexFormatError(f"{folder}: {exc}") from None


def _load_map(path: Path) -> Whitening:
    try:
        return Whitening.load(path)
    except (OSError, ValueError, KeyError) as exc:
        raise IndexFormatError(f"{path}: unreadable ({exc})") from None


class SearchEngine:
    """An opened index plus the models to query it; load once, query many times."""

    def __init__(
        self,
        index_dir: Path,
        embedder: Embedder | None = None,
        verify: bool = True,
        threads: int | None = None,
        localiser: GarmentLocaliser | None = None,
        streams: int = 1,
    ) -> None:
        # The version the index path points to now: a build that swaps it while this engine
        # opens or serves changes nothing under it.
        self.index_dir = Path(index_dir).resolve()
        self.manifest = layout.read_manifest(self.index_dir)
        views = self.manifest.get("views")
        if not isinstance(views, dict) or "simple" not in views:
            raise IndexFormatError(f"{self.index_dir}: manifest lists no search views")
        needed = [layout.STORE, layout.POSTINGS]
        for view, info in views.items():
            needed += [f"{layout.view_dir(view)}/{layout.WHITENING}", f"{layout.view_dir(view)}/{layout.ANN}"]
            if info.get("whitening", {}).get("query"):
                needed.append(f"{layout.view_dir(view)}/{layout.QUERY_MAP}")
        if "model" in self.manifest:
            needed.append(f"{layout.MODEL_DIR}/{HEAD}")
        needed += layout.network_files(self.manifest)
        layout.verify_files(self.index_dir, self.manifest, needed, full=verify)
        # The pictures only by size: hashing gigabytes of JPEGs at every start buys little.
        layout.verify_files(self.index_dir, self.manifest, [layout.IMAGES], full=False)
        network = self.index_dir / layout.NETWORK if layout.network_files(self.manifest) else None
        if embedder is None:
            spec = spec_from_manifest(self.manifest, self.index_dir)
            embedder = Embedder(spec, threads=threads, network_dir=network, streams=streams)
        check_embedder(self.manifest, embedder, self.index_dir)
        self.embedder, self.threads, self.streams = embedder, threads, streams
        ann = self.manifest.get("ann", {})
        params = HnswParams(
            m=ann.get("m", 32),
            ef_construction=ann.get("ef_construction", 200),
            ef_search=ann.get("ef_search", 256),
            storage=ann.get("storage", "flat"),
        )
        count = int(self.manifest.get("counts", {}).get("indexed", 0))
        tuned = self._tuned_tail()
        self.views: dict[str, _View] = {}
        for view, info in views.items():
            folder = self.index_dir / layout.view_dir(view)
            query = info.get("whitening", {}).get("query")
            self.views[view] = _View(
                _load_map(folder / layout.WHITENING),
                LiveAnn(AnnIndex.load(folder / layout.ANN, int(info["dim"]), count, _tuned(params, info))),
                _load_map(folder / query) if query else None,
                _colour_weight(info, folder),
                _signature_kind(self.manifest, view, folder),
                tuned if view == self.manifest.get("model", {}).get("view") else None,
            )
        if network is not None:  # converted pieces saved in the index: reading them is cheap
            self.embedder.warm(tuned)
        self.store = ProductStore.open_readonly(self.index_dir / layout.STORE)
        self.pictures = ImageStore.open_readonly(self.index_dir / layout.IMAGES)
        self._built_postings = Postings.load(self.index_dir / layout.POSTINGS)
        self.postings = self._built_postings
        self.generation = 0  # of the store's changes in place, as this engine last read them
        self.refresh()
        self._localiser = localiser
        self._localiser_lock = threading.Lock()

    def refresh(self) -> bool:
        """Take in what `firs add`/`remove` changed in the store since this engine last looked:
        added products' vectors beside each view's graph, removed ones hidden, the tag index
        updated. True when anything changed; one small query when nothing did. Each view's
        state and the tag index are replaced whole, so a search running meanwhile sees the old
        or the new, never half of each (a product removed in between is left out of its answer)."""
        if self.store.generation() == self.generation:
            return False
        reader = ProductStore.open_readonly(self.index_dir / layout.STORE)
        try:
            snapshot = reader.live_snapshot()
        finally:
            reader.close()
        views = {}
        for name, view in self.views.items():
            raw, colours = snapshot.features.get(name), snapshot.features.get(shards.colour_column(name))
            if raw is None:
                views[name] = replace(view, ann=LiveAnn(view.ann.base, snapshot.hidden))
                continue
            vectors = colour_fusion.catalogue_vectors(raw, colours, view.whitening, view.colour_weight)
            views[name] = replace(view, ann=LiveAnn(view.ann.base, snapshot.hidden, snapshot.labels, vectors))
        self.postings = self._built_postings.changed(snapshot.hidden, snapshot.tags)
        self.views = views
        self.generation = snapshot.generation
        self.store.forget_fields()  # metadata keys of added products
        return True

    def _tuned_tail(self) -> Tail | None:
        """The index's model's tuned backbone blocks, if it has any."""
        if not self.manifest.get("model", {}).get("tuned_blocks"):
            return None
        try:
            return TrainedModel.load(self.index_dir / layout.MODEL_DIR).backbone_tail(self.embedder.net)
        except FirsError as exc:
            raise IndexFormatError(f"{self.index_dir}: {exc}") from None

    @property
    def localiser(self) -> GarmentLocaliser:
        """The pose models, loaded on first use of the fine mode, then kept."""
        with self._localiser_lock:  # two first fine searches at once load it once
            if self._localiser is None:
                self._localiser = GarmentLocaliser(
                    threads=self.threads, streams=self.streams, resample=self.embedder.spec.resample
                )
            return self._localiser

    def view_resize(self, view: str) -> str:
        return str(self.manifest["views"][view].get("resize", self.embedder.spec.resize))

    def neighbours(
        self,
        vector: np.ndarray,
        k: int,
        view: str = "simple",
        allowed: np.ndarray | None = None,
        found: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[dict[str, Any]]:
        """Top-k products for one whitened vector, with scores, metadata and labels; `found`: the
        view's unrestricted ANN answer for this vector, when already taken (at least k deep)."""
        labels, scores = (
            found if found is not None and allowed is None else self.views[view].ann.query(vector, k, allowed)
        )
        return self.products(labels[0, :k].tolist(), scores[0, :k].tolist())

    def products(self, labels: list[int], scores: list[float]) -> list[dict[str, Any]]:
        """Result records for ANN labels, in order, each with its score and labels."""
        records = self.store.records_by_label(labels)
        tags = self.store.tags_of(labels) if labels else {}
        out = []
        for label, score in zip(labels, scores, strict=True):
            record = records.get(label)
            if record is None:  # removed by `firs remove` between the ANN's snapshot and now
                continue
            names = [t["label"] for t in tags.get(label, [])]
            out.append({"id": record.pop("id"), "score": round(float(score), 4), **record, "labels": names})
            # Normalised fields every result has: the catalogue's own where it names them,
            # else the tagger's best label (labels are sorted by kind, then confidence).
            for name, kind, aliases in _NORMALISED:
                if not out[-1].get(name):
                    own = next((record[a] for a in aliases if record.get(a)), None)
                    best = next((n.split(":", 1)[1] for n in names if n.startswith(kind)), None)
                    out[-1][name] = own or best or ""
        return out

    def vector_of(self, image: Image.Image, view: str, classify: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Search vector (whitened, or mapped by a trained query head; the colour signature
        beside it where the view has one) and ImageNet probabilities of one photo in one view
        (with `classify=False` they may be left out: an empty array)."""
        prepared = self.embedder.prepare(image, self.view_resize(view))[None]
        state = self.views[view]
        features, probabilities = self.embedder.forward(prepared, state.tail, classify)
        vector = state.photo_map.apply(features)
        if state.colour_weight:
            vector = colour_fusion.fuse(
                vector, colour_signature.signatures(prepared, state.signature), state.colour_weight
            )
        return vector[0], probabilities[0]

    def catalogue_region(self, near: list[Neighbour], region: str, found: list[str]) -> str | None:
        """The body region to search instead of `region`, when the nearest products' catalogue
        metadata (not labels read off pictures) votes for a garment worn elsewhere and the
        pose shows that region: a dress photographed whole, not just its top half
        (bench/region_rule.py: on myntra-1k, 74 % right against 66 % for upper-first)."""
        voted = vote_types(near, sources=TRUSTED_SOURCES)
        wanted = region_of(voted[0].label) if voted else None
        return wanted if wanted and wanted != region and wanted in found else None

    def nearest_labels(
        self,
        vector: np.ndarray,
        view: str = "fine",
        exclude: int | None = None,
        found: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[Neighbour]:
        """(similarity, labels) of the VOTERS nearest catalogue products, `exclude` left out;
        `found`: the view's ANN answer for this vector, when already taken (at least VOTERS + 1 deep)."""
        labels, scores = found or self.views[view].ann.query(vector, VOTERS + (exclude is not None))
        labels, scores = labels[:, : VOTERS + 1], scores[:, : VOTERS + 1]
        tags = self.store.tags_of(labels[0].tolist())
        near = [(s, tags.get(label, [])) for label, s in zip(labels[0].tolist(), scores[0].tolist(), strict=True)]
        return [pair for pair, label in zip(near, labels[0].tolist(), strict=True) if label != exclude][:VOTERS]

    def search(self, query: Query) -> SearchAnswer:
        """Answer a photo, words, or a product id (more like this), with optional filters."""
        query.check(self)
        clock = _Clock()
        extra: dict[str, Any] = {}
        allowed = self.store.where(query.where) if query.where else None
        if query.where:
            clock.lap("filter")
            extra["filtered"] = len(allowed)
            if not len(allowed):
                extra["notice"] = "no product passes the filters " + ", ".join(map(str, query.where))
                # Which filter emptied the list: each one's matches on its own.
                extra["filter_matches"] = [
                    {"where": str(c), "products": len(self.store.where([c]))} for c in query.where
                ]
        if query.text:
            ids, bm25 = self.store.text_matches(query.text)
            clock.lap("text")
            if query.image is None and query.like is None:
                keep = np.isin(ids, allowed) if allowed is not None else np.ones(len(ids), bool)
                ids, bm25 = ids[keep][: query.k], bm25[keep][: query.k]
                extra["text_matches"] = int(keep.sum())
                return SearchAnswer(self.products(ids.tolist(), bm25.tolist()), clock.done(), "text", extra)
            if len(ids):
                if allowed is not None and len(allowed) and not len(np.intersect1d(allowed, ids)):
                    extra["notice"] = f"no product matches both the words {query.text!r} and the filters"
                allowed = ids if allowed is None else np.intersect1d(allowed, ids)
                extra["text_matches"] = len(ids)
            else:
                extra["notice"] = f"no product matches the words {query.text!r}; they were not used"
        if query.like is not None:
            return self._more_like(query, allowed, clock, extra)
        return self._search_photo(query, allowed, clock, extra)

    def _more_like(
        self, query: Query, allowed: np.ndarray | None, clock: _Clock, extra: dict[str, Any]
    ) -> SearchAnswer:
        label = self.store.label_of(str(query.like))
        if label is None:
            raise QueryError(f"product {query.like!r} is not in this index (or has no usable image)")
        view = "fine" if "fine" in self.views else "simple"
        vector = self.views[view].ann.vector(int(label))
        if allowed is None:
            labels, scores = self.views[view].ann.query(vector, query.k + 1)
        else:
            labels, scores = self.views[view].ann.query(vector, query.k, allowed[allowed != label])
        pairs = [(int(a), float(b)) for a, b in zip(labels[0], scores[0], strict=True) if a != label][: query.k]
        clock.lap("search")
        results = self.products([a for a, _ in pairs], [b for _, b in pairs])
        return SearchAnswer(results, clock.done(), "like", {"like": query.like, **extra})

    def _search_photo(
        self, query: Query, allowed: np.ndarray | None, clock: _Clock, extra: dict[str, Any]
    ) -> SearchAnswer:
        image = query.image
        assert image is not None
        data = image if isinstance(image, bytes) else read_bytes(image)
        # Decoded straight to the size the mode needs: for the localiser at most CLOSER_SIDE (it works
        # on a 480 px copy and cuts a person seen from further off out of this), for the whole photo
        # the embedder's input on the short side. A JPEG is decoded at 1/2, 1/4 or 1/8 scale where
        # that covers it: a phone's 12-megapixel photo in ~7-10 ms against 55 at full size.
        name = "query" if isinstance(image, bytes) else str(image)
        if query.mode == "simple":
            photo = decode_photo(data, name, cover=self.embedder.spec.input_size)
        else:
            photo = decode_photo(data, name, CLOSER_SIDE)
        picture = photo.image
        extra["image_size"] = list(photo.size)
        clock.lap("decode")
        if query.mode == "simple":
            vector, _ = self.vector_of(picture, "simple", classify=False)
            clock.lap("embed")
            results = self.neighbours(vector, query.k, "simple", allowed)
            clock.lap("search")
            return SearchAnswer(results, clock.done(), query.mode, extra)
        located = self.localiser.locate(picture, region=query.region, all_items=query.all_items, closer=True)
        clock.stages.update(detect=located.detect_ms, segment=located.segment_ms)
        clock.last = time.perf_counter()
        first = None  # the first garment's vector, probabilities, voters and ANN answer, when already taken
        if query.region == "auto" and not query.all_items and not located.fallback:
            vector, probabilities = self.vector_of(located.items[0].view, "fine", query.mode == "tag")
            clock.add("embed")
            # One graph search for the vote and, where nothing restricts the answer, the answer itself.
            wide = self.views["fine"].ann.query(vector, max(query.k, VOTERS + 1))
            near = self.nearest_labels(vector, found=wide)
            wanted = self.catalogue_region(near, located.items[0].region.name, located.found)
            clock.add("detect")
            if wanted:
                located = self.localiser.locate(picture, region=wanted, strict=False, again=located)
                clock.stages["detect"] += located.detect_ms
                clock.stages["segment"] += located.segment_ms
                clock.last = time.perf_counter()
                extra["region_rule"] = f"{wanted}: the nearest products' labels say a {wanted}-body garment"
            else:
                first = (vector, probabilities, near, wide)
        items = []
        for number, item in enumerate(located.items):
            if number == 0 and first:
                vector, probabilities, near, wide = first
            else:
                (vector, probabilities), near, wide = self.vector_of(item.view, "fine", query.mode == "tag"), None, None
            clock.add("embed")
            restrict, entry = allowed, {"region": _region_answer(item.region.as_dict(), photo)}
            if query.mode == "tag":
                region = None if located.fallback else item.region.name
                voted = vote_types(near if near is not None else self.nearest_labels(vector))
                labels = query_tags(probabilities, item.view, region, voted)
                restrict, rule = tag_candidates(self.postings, labels, query.k, allowed)
                entry.update(
                    labels=[t.as_dict() for t in labels],
                    candidates=len(self) if restrict is None else len(restrict),
                    candidate_rule=rule,
                )
                clock.add("tag")
            entry["results"] = self.neighbours(vector, query.k, "fine", restrict, found=wide)
            clock.add("search")
            items.append(entry)
        top = items[0]
        extra.update({key: top[key] for key in ("labels", "candidates", "candidate_rule") if key in top})
        extra["regions"] = [top["region"]]
        if located.fallback:
            extra["fallback"] = located.fallback
        if query.all_items:
            extra["items"] = items
        return SearchAnswer(top["results"], clock.done(), query.mode, extra)

    def __len__(self) -> int:
        return len(self.views["simple"].ann)

    def warm_up(self) -> None:
        """Load every model and pay first-call costs now, so that the first query is not slow."""
        blank = Image.new("RGB", (256, 256), (255, 255, 255))
        self.embedder.warm(next((view.tail for view in self.views.values() if view.tail is not None), None))
        self.vector_of(blank, "simple")
        if "fine" in self.views:
            # A catalogue photo of a person, when there is one: the pose landmark model only
            # runs (and pays its first-call cost) once a person has been detected.
            worn = self.store.worn_product()
            data = self.pictures.get(worn) if worn else None
            try:
                picture = decode_image(data, "a worn catalogue picture") if data else blank
            except FirsError:
                picture = blank
            self.localiser.locate(picture, strict=False)
            fine = self.views["fine"]
            if fine.colour_weight:  # the signature's lookup tables
                prepared = self.embedder.prepare(blank, self.view_resize("fine"))[None]
                colour_signature.signatures(prepared, fine.signature)
