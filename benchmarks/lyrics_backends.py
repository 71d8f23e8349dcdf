"""Chunks per second and fidelity of ways to run the lyrics model, on real lyrics.

Cuts the lyrics of the given CSV files (a ``lyrics`` column) into the distinct chunks that
``embed_lyrics`` encodes, draws ``--chunks`` of them (fixed seed, the same share from each
file), and encodes them with each backend in turn, ``--repeats`` rounds interleaved so that a
change in the machine's load hits every backend alike. Prints chunks/s (median over rounds),
the speed ratio to torch float32 and the cosine of each chunk vector to torch float32 (min
and mean). Not part of the pipeline; the ONNX rows need ``pip install -e ".[onnx]"``
and are skipped without it. For example, on a manifest of real songs with lyrics such as
songs_en_de_400 and a CSV of Bangla and English lyrics (docs/performance.md has what this gave)::

    python benchmarks/lyrics_backends.py --chunks 120 --repeats 3 \\
        $MUSICLUST_SHARED_DATA/songs_en_de_400/manifest.csv $MUSICLUST_SHARED_DATA/lyrics_bn_en_120.csv

Backends: ``torch-fp32`` (what ``embed_lyrics`` runs), ``torch-bf16`` (``lyrics.precision:
bfloat16``), ``onnx-fp32`` (the transformer exported with ``torch.onnx``, run by onnxruntime),
``onnx-int8`` (onnxruntime dynamic quantization, int8 per-channel weights, int8 activations
per tensor) and ``onnx-nbits8`` (MatMulNBits: 8-bit weights in blocks of 32, activations
quantized per block, ``accuracy_level`` 4).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

log = logging.getLogger("benchmarks.lyrics_backends")


def real_chunks(paths: list[Path], n: int, seed: int = 0) -> tuple[list[str], object]:
    """``n`` distinct chunks drawn evenly from the files' lyrics, and the encoder that cut them."""
    from musiclust.text.encoders import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(show_progress=False)
    rng = np.random.default_rng(seed)
    picked: list[str] = []
    for i, path in enumerate(paths):
        texts = [t for t in pd.read_csv(path)["lyrics"] if isinstance(t, str) and t.strip()]
        chunks = sorted({c.text for t in texts for c in enc.chunks(t)})
        k = min(len(chunks), (n - len(picked)) // (len(paths) - i))
        picked += [chunks[j] for j in sorted(rng.choice(len(chunks), k, replace=False))]
        log.info("%s: %d texts, %d distinct chunks, %d drawn", path.name, len(texts), len(chunks), k)
    return picked, enc


def onnx_backends(enc, work: Path, threads: int) -> dict[str, Callable[[list[str]], np.ndarray]]:
    """Encoders running the exported transformer in onnxruntime (empty without onnxruntime).

    ``onnx-fp32`` and ``onnx-nbits8`` are the library's own backends (``lyrics.backend: onnx`` and
    ``onnx-int8``, exported into ``work``); ``onnx-int8`` is plain dynamic int8 quantization of
    the same export (one activation scale per tensor), measured here and not offered.
    """
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from musiclust.text.onnx_backend import OnnxSentenceModel
    except ImportError as e:
        log.warning("onnxruntime/onnx not installed (%s): ONNX backends skipped", e)
        return {}
    from musiclust.text.models import BUNDLED_MODEL, resolve_model

    model_dir = resolve_model(BUNDLED_MODEL).path
    fp32 = OnnxSentenceModel(enc.model, model_dir, "onnx", work)  # session threads: torch's (--threads)
    nbits = OnnxSentenceModel(enc.model, model_dir, "onnx-int8", work)
    dynamic = OnnxSentenceModel(enc.model, model_dir, "onnx", work)
    int8 = work / "dynamic-int8.onnx"
    quantize_dynamic(str(fp32.path), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    dynamic.session = ort.InferenceSession(str(int8), so, providers=["CPUExecutionProvider"])

    def backend(model: OnnxSentenceModel) -> Callable[[list[str]], np.ndarray]:
        return lambda texts: model.encode(texts, batch_size=32, normalize_embeddings=True)

    return {"onnx-fp32": backend(fp32), "onnx-int8": backend(dynamic), "onnx-nbits8": backend(nbits)}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+", type=Path, help="CSV files with a lyrics column")
    ap.add_argument("--chunks", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    texts, enc = real_chunks(args.csv, args.chunks)
    st = enc.model
    bf16 = __import__("copy").deepcopy(st).to(torch.bfloat16)

    def st_encode(model) -> Callable[[list[str]], np.ndarray]:
        return lambda t: np.asarray(
            model.encode(t, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True),
            np.float32,
        )

    backends = {"torch-fp32": st_encode(st), "torch-bf16": st_encode(bf16)}
    with tempfile.TemporaryDirectory() as work:
        backends.update(onnx_backends(enc, Path(work), args.threads))
        seconds: dict[str, list[float]] = {k: [] for k in backends}
        vectors: dict[str, np.ndarray] = {}
        for r in range(args.repeats):
            for name, encode in backends.items():
                t0 = time.perf_counter()
                vectors[name] = encode(texts)
                seconds[name].append(time.perf_counter() - t0)
            log.info("round %d: %s", r, {k: round(v[-1], 1) for k, v in seconds.items()})
    ref, base = vectors["torch-fp32"], float(np.median(seconds["torch-fp32"]))
    rows = []
    for name in backends:
        cos = (
            (vectors[name] * ref).sum(1) / np.linalg.norm(vectors[name], axis=1) / np.linalg.norm(ref, axis=1)
        )
        med = float(np.median(seconds[name]))
        rows.append(
            {
                "backend": name,
                "chunks_per_s": round(len(texts) / med, 2),
                "ratio_vs_torch_fp32": round(base / med, 2),
                "cos_min": round(float(cos.min()), 4),
                "cos_mean": round(float(cos.mean()), 5),
            }
        )
    table = pd.DataFrame(rows)
    log.info("%d chunks, %d threads, median of %d interleaved rounds\n%s", len(texts), args.threads,
             args.repeats, table.to_string(index=False))  # fmt: skip
    return table


if __name__ == "__main__":
    main()
