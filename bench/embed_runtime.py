"""The embedder's runtimes side by side, in one process, against PyTorch eager batch 1.

    python bench/embed_runtime.py [--repeats 60] [--batch 32]

Prints ms/image at batch 1 and batched, the ratio to the reference (eager, batch 1, measured
first and again last: the gap between the two is the machine's noise), and how far each
runtime's features and class probabilities are from eager's (max |diff|, least cosine).
Runtimes: eager PyTorch; OpenVINO fp32 (what FIRS runs) and bf16 (where the CPU has it);
ONNX Runtime fp32 (threads spinning, its default, and not) when `onnx` and `onnxruntime`
are installed (`pip install -e ".[bench]"`; onnx 1.17, the last before protobuf 6, which
mediapipe's pin excludes); and with --pictures, OpenVINO int8 (NNCF post-training
quantisation, calibrated on up to 300 of those pictures).

    python bench/embed_runtime.py --pictures ../shared/data/viton-dev/images

With --pictures, agreement is measured on 64 other real pictures (prepared as the build
prepares them) instead of random arrays, and also as the median cosine to eager's features.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from firs.runtime import default_threads, tune_allocator
from firs.vision import compiled_net
from firs.vision.embedder import Embedder

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def timed(forward: Forward, one: np.ndarray, many: np.ndarray, repeats: int) -> tuple[float, float]:
    for _ in range(3):
        forward(one)
    forward(many)
    start = time.perf_counter()
    for _ in range(repeats):
        forward(one)
    single = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(3):
        forward(many)
    return single * 1000, (time.perf_counter() - start) / (3 * len(many)) * 1000


def openvino_forward(precision: str, threads: int) -> tuple[str, Forward]:
    """OpenVINO at `precision`, and the precision it really runs (bf16 falls back to fp32 on
    CPUs without it)."""
    compiled_net.PRECISION = precision  # read when a piece compiles
    embedder = Embedder(threads=threads)
    embedder.warm()
    compiled_net.PRECISION = "f32"
    piece = next(iter(embedder.network._pieces.values()))
    hint = piece._compiled.get_property("INFERENCE_PRECISION_HINT")
    return hint.to_string(), embedder.forward


def whole_network(eager: Embedder) -> object:
    """Trunk and ImageNet tail as one torch module: features and class probabilities."""
    import torch

    from firs.vision.embedder import _Tail, _Trunk

    class Whole(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk, self.tail = _Trunk(eager.net), _Tail(eager.original_tail, eager.pool, eager.net._fc)

        def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return self.tail(self.trunk(batch))

    return Whole().eval()


def prepared_pictures(folder: Path, embedder: Embedder, count: int) -> np.ndarray:
    """Up to `count` pictures of `folder` (sorted, every one readable), prepared as the build does."""
    from PIL import Image

    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    step = max(1, len(paths) // count)
    return np.stack([embedder.prepare(Image.open(p).convert("RGB")) for p in paths[::step][:count]])


def openvino_int8_forward(eager: Embedder, threads: int, calibration: np.ndarray) -> Forward | str:
    """The whole network on OpenVINO, its weights and activations quantised to 8 bits by NNCF."""
    try:
        import nncf
    except ImportError:
        return "not measured (nncf is not installed: pip install -e '.[bench]')"
    import openvino
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = openvino.convert_model(
            whole_network(eager), example_input=torch.zeros((1, 3, 224, 224)), input=[(-1, 3, 224, 224)]
        )
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    quantised = nncf.quantize(model, dataset, subset_size=len(calibration), preset=nncf.QuantizationPreset.MIXED)
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    compiled = openvino.Core().compile_model(quantised, "CPU", config)
    request = compiled.create_infer_request()

    def forward(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        results = request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        return np.array(results[0], copy=True), np.array(results[1], copy=True)

    return forward


def onnxruntime_forwards(eager: Embedder, threads: int, folder: Path) -> dict[str, Forward | str]:
    """ONNX Runtime on the same network, its threads spinning between calls (its default) and not."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import onnxruntime
        import torch
    except ImportError as exc:
        return {"onnxruntime fp32": f"not measured ({exc.name} is not installed: pip install -e '.[bench]')"}
    path = folder / "embedder.onnx"
    axes = {"x": {0: "n"}, "features": {0: "n"}, "probabilities": {0: "n"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            whole_network(eager),
            torch.zeros((1, 3, 224, 224)),
            str(path),
            input_names=["x"],
            output_names=["features", "probabilities"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    forwards: dict[str, Forward | str] = {}
    for spin in ("1", "0"):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def forward(batch: np.ndarray, session: object = session) -> tuple[np.ndarray, np.ndarray]:
            features, probabilities = session.run(None, {"x": batch})  # type: ignore[attr-defined]
            return features, probabilities

        forwards[f"onnxruntime fp32{'' if spin == '1' else ', no spin'}"] = forward
    return forwards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--pictures", type=Path, help="catalogue pictures: int8 calibration and agreement")
    args = parser.parse_args()
    tune_allocator()
    threads = default_threads()
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    many = rng.standard_normal((args.batch, 3, 224, 224)).astype(np.float32)
    check = rng.standard_normal((16, 3, 224, 224)).astype(np.float32)

    eager = Embedder(threads=threads, runtime="torch")
    eager.original_tail  # noqa: B018  (made outside inference mode, so ONNX export can trace it)
    calibration = None
    if args.pictures:
        pictures = prepared_pictures(args.pictures, eager, 364)
        calibration, check = pictures[:300], pictures[300:]
    reference = timed(eager.forward, one, many, args.repeats)
    want = eager.forward(check)
    print(f"{platform.processor() or platform.machine()}, {threads} threads; EfficientNet-Lite0 224 px")
    batched = f"batch {args.batch} ms/img"
    print(f"{'runtime':<26} {'batch 1 ms':>10} {'vs ref':>7} {batched:>16} {'vs ref':>7}  agreement")
    ratio = reference[1] / reference[0]
    print(f"{'eager (reference)':<26} {reference[0]:10.2f} {1:7.2f} {reference[1]:16.2f} {ratio:7.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        runs: list[tuple[str, Forward | str]] = []
        for precision in ("f32", "bf16"):
            actual, forward = openvino_forward(precision, threads)
            runs.append((f"openvino {precision} (ran {actual})", forward))
        runs.extend(onnxruntime_forwards(eager, threads, Path(tmp)).items())
        if calibration is not None:
            runs.append(("openvino int8 (nncf)", openvino_int8_forward(eager, threads, calibration)))
        for name, forward in runs:
            if isinstance(forward, str):
                print(f"{name:<26} {forward}")
                continue
            single, batched = timed(forward, one, many, args.repeats)
            got = forward(check)
            diff = max(np.abs(got[0] - want[0]).max(), np.abs(got[1] - want[1]).max())
            cosines = (got[0] * want[0]).sum(axis=1)
            print(
                f"{name:<26} {single:10.2f} {single / reference[0]:7.2f} {batched:16.2f} "
                f"{batched / reference[0]:7.2f}  max |diff| {diff:.1e}, least cosine {cosines.min():.5f}, "
                f"median {np.median(cosines):.5f}"
            )
    again = timed(eager.forward, one, many, args.repeats)
    print(f"{'eager, again':<26} {again[0]:10.2f} {again[0] / reference[0]:7.2f} {again[1]:16.2f}")


if __name__ == "__main__":
    main()
