"""The embedder's network on OpenVINO, in pieces: the trunk, and each tail with its pooling.

PyTorch eager runs EfficientNet-Lite0 at ~17 ms a photo on the 2-core dev machine;
OpenVINO's CPU plugin at fp32 takes ~6 ms for the same numbers (max |diff| < 1e-6;
bench/embed_runtime.py). The network is split where `firs train` splits it (trunk | tail),
so the ImageNet tail and a trained tail share one trunk, and a search that needs only the
trained features skips the ImageNet tail.

Converting a piece from PyTorch takes seconds, reading it back as OpenVINO IR a tenth of
one: `save` writes the converted pieces into a folder (the index's `network/`), named by
a digest of everything that fixes their numbers, and `NetworkCache(folder)` reads them
back, converting in memory whatever is not there.
"""

from __future__ import annotations

import atexit
import hashlib
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..runtime import deferred_interrupts

# bf16 (chosen by OpenVINO itself on CPUs with AVX512-BF16 or AMX) moves features by up to
# 1e-2 and would make an index depend on the machine that built it; fp32 is the same
# everywhere and already well under the eager forward's time.
PRECISION = "f32"
CONVERSION_VERSION = 1  # bump when what a piece computes changes for the same weights


def _openvino():  # imported on first use: ~0.2 s that `firs --help` need not pay
    import openvino

    return openvino


def digest(kind: str, module: torch.nn.Module, input_shape: tuple[int, ...], extra: str = "") -> str:
    """What fixes a piece's numbers: its kind, its tensors, its input shape, the pooling."""
    h = hashlib.sha256(f"{CONVERSION_VERSION}|{kind}|{input_shape}|{extra}".encode())
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


_compiling: list[threading.Thread] = []  # background compilations, joined at exit


@atexit.register
def _join_compiling() -> None:
    """An OpenVINO compilation still running when the interpreter finalises aborts the process."""
    for thread in _compiling:
        thread.join()


_searches = 0  # in progress in this process, as the service counts them (`search_running`)
_searches_lock = threading.Lock()


@contextmanager
def search_running() -> Iterator[None]:
    """Marks a search in progress. While another is too, networks run on their shared copy even
    between the other's inferences: a lone copy's idle threads spin on after each inference and
    would take the cores from the other search's GrabCut and decoding."""
    global _searches
    with _searches_lock:
        _searches += 1
    try:
        yield
    finally:
        with _searches_lock:
            _searches -= 1


class CompiledPiece:
    """One converted piece compiled for the CPU, callable from any thread (one infer request
    per calling thread and compiled copy: a request is not thread-safe).

    `threads`: the threads an inference may use. A compiled model runs one inference at a time
    per stream: on one stream the service's workers queue behind each other (two threads calling
    the pose landmark network: 69 inferences/s against 61 for one). With `streams` > 1 a second
    copy is compiled with that many streams, sharing the threads between them (136-148/s from
    two threads); a call made while another search or inference is running takes that copy (once
    compiled, in the background), a lone call the first, which gives it every thread (a lone fine
    search on one-thread streams took 75 ms against 57 over HTTP). A build's batches come one at
    a time: one stream."""

    def __init__(self, model: object, threads: int | None, streams: int = 1) -> None:
        ov = _openvino()
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": PRECISION}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.model, self._threads, self._streams = model, threads, streams
        self._first: CompiledPiece | None = None  # the first output alone, made on first use
        self._first_lock = threading.Lock()
        self._compiled = ov.Core().compile_model(model, "CPU", config)
        self._shared: object | None = None  # compiled in the background: start-up does not wait for it
        self._local = threading.local()
        self._running, self._running_lock = 0, threading.Lock()
        # One inference now, in the thread that compiles: OpenVINO's bindings set up their NumPy
        # access lazily, and two threads doing that at once deadlock (seen: `firs serve` with two
        # workers hung at start-up, both in their first infer). It also pays the first-call cost.
        shape = [1 if size.is_dynamic else size.get_length() for size in self._compiled.input(0).get_partial_shape()]
        self._infer(self._compiled, np.zeros(shape, np.float32))
        if streams > 1:
            shared = {**config, "NUM_STREAMS": streams}
            compile_shared = threading.Thread(target=self._compile_shared, args=(shared, shape), daemon=True)
            compile_shared.start()
            _compiling.append(compile_shared)

    def _compile_shared(self, config: dict[str, object], shape: list[int]) -> None:
        shared = _openvino().Core().compile_model(self.model, "CPU", config)
        self._infer(shared, np.zeros(shape, np.float32))
        self._shared = shared

    def first_output(self) -> CompiledPiece:
        """This piece's first output alone: its graph without what only the other outputs need
        (the tail without the ImageNet classifier: the same features, ~0.3 ms less). Derived from
        the piece, so never saved beside it."""
        with self._first_lock:
            if self._first is None:
                ov, model = _openvino(), self.model
                self._first = CompiledPiece(
                    ov.Model([model.outputs[0]], model.get_parameters()), self._threads, self._streams
                )
            return self._first

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        with self._running_lock:
            self._running += 1
            crowded = self._running > 1 or _searches > 1
            compiled = self._shared if crowded and self._shared is not None else self._compiled
        try:
            return self._infer(compiled, batch)
        finally:
            with self._running_lock:
                self._running -= 1

    def _infer(self, compiled: object, batch: np.ndarray) -> list[np.ndarray]:
        requests = self._local.__dict__.setdefault("requests", {})
        request = requests.get(id(compiled))
        if request is None:
            request = requests[id(compiled)] = compiled.create_infer_request()  # type: ignore[attr-defined]
        results = request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        # The outputs are views of the request's own buffers, overwritten by its next call.
        return [np.array(results[i], dtype=np.float32, copy=True) for i in range(len(results))]


class NetworkCache:
    """Compiled pieces by digest: read from `folder` where saved there, else converted."""

    def __init__(self, folder: Path | None, threads: int | None, streams: int = 1) -> None:
        self.folder, self.threads, self.streams = folder, threads, streams
        self._pieces: dict[str, CompiledPiece] = {}
        self._lock = threading.Lock()

    def piece(self, key: str, module: Callable[[], torch.nn.Module], input_shape: tuple[int, ...]) -> CompiledPiece:
        with self._lock:
            if key not in self._pieces:
                self._pieces[key] = CompiledPiece(self._model(key, module, input_shape), self.threads, self.streams)
            return self._pieces[key]

    def _model(self, key: str, module: Callable[[], torch.nn.Module], input_shape: tuple[int, ...]) -> object:
        ov = _openvino()
        if self.folder is not None and (self.folder / f"{key}.xml").is_file():
            return ov.Core().read_model(str(self.folder / f"{key}.xml"))
        example = torch.zeros((1, *input_shape))
        # The conversion traces the module; torch's tracer warns about its own deprecation.
        with torch.no_grad(), warnings.catch_warnings(), deferred_interrupts():
            warnings.simplefilter("ignore")
            return ov.convert_model(module().eval(), example_input=example, input=[(-1, *input_shape)])

    def save(self, folder: Path) -> list[str]:
        """Write every piece compiled so far as OpenVINO IR (`<digest>.xml` + `.bin`)."""
        ov = _openvino()
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for key, piece in self._pieces.items():
                ov.save_model(piece.model, str(folder / f"{key}.xml"), compress_to_fp16=False)
            return sorted(self._pieces)
