"""A sentence-transformers model run by onnxruntime (``lyrics.backend: onnx | onnx-int8``).

The model's transformer is exported once with ``torch.onnx`` from the local model directory
(offline) into ``.musiclust/cache/onnx/<key>/model.onnx``, outside every DVC output; ``<key>``
hashes the model's files, the backend and the torch/onnx/onnxruntime versions, so a changed
model or library gets its own export. ``onnx-int8`` then quantizes the weights of every
matrix product to 8 bits in blocks of 32 along the input dimension (onnxruntime MatMulNBits,
``accuracy_level`` 4: activations are quantized per block too). Plain dynamic int8
quantization (one activation scale per tensor) is not offered: on real lyrics it moved chunk
vectors down to cosine 0.97 of float32 (docs/performance.md).

Tokenization, mean pooling and normalization are done here as the model's own modules do
them; only models made of Transformer -> Pooling (mean) [-> Normalize] are supported, others
are refused with the reason. Batches hold chunks of similar token length (sorted), and the
session runs with torch's thread count, so outputs are byte-identical across runs on one
machine with the same thread count.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: ``lyrics.backend`` values
BACKENDS = ("torch", "onnx", "onnx-int8")
#: where exports are kept (relative to the directory the stage runs in: the repository root)
DEFAULT_CACHE = Path(".musiclust/cache/onnx")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OPSET = 17


class BackendUnavailableError(RuntimeError):
    """The requested lyrics backend cannot run here (a missing package, an unsupported model)."""


def require_onnxruntime(backend: str) -> None:
    """Fail at once, naming the fix, when ``backend`` needs packages that are not installed."""
    missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailableError(
            f"lyrics.backend: {backend!r} needs the package(s) {', '.join(missing)}, which are not "
            'installed: pip install -e ".[onnx]" (or set lyrics.backend: torch)'
        )


def _check_layout(st_model: Any) -> str:
    """The pooling mode of a supported model (Transformer, mean Pooling, optional Normalize)."""
    names = [type(m).__name__ for m in st_model]
    pooling = st_model[1] if len(st_model) > 1 else None
    # sentence-transformers >= 6 names the mode (``pooling_mode``); older versions had one flag per mode
    mode = getattr(pooling, "pooling_mode", None)
    if mode is None and getattr(pooling, "pooling_mode_mean_tokens", False):
        mode = "mean"
    if names[:2] != ["Transformer", "Pooling"] or mode != "mean" or names[2:] not in ([], ["Normalize"]):
        raise BackendUnavailableError(
            f"lyrics.backend onnx supports sentence-transformers models made of Transformer -> "
            f"Pooling (mean) [-> Normalize]; this one is {' -> '.join(names)} (pooling {mode}) "
            "(use lyrics.backend: torch)"
        )
    return "mean"


def cache_key(model_dir: Path, backend: str) -> str:
    """Hash of the model's files, the backend and the exporting/running library versions."""
    import onnx
    import onnxruntime
    import torch

    h = hashlib.sha256(f"{backend}|opset{_OPSET}|torch{torch.__version__}|onnx{onnx.__version__}|"
                       f"ort{onnxruntime.__version__}".encode())  # fmt: skip
    for p in sorted(q for q in Path(model_dir).rglob("*") if q.is_file()):
        h.update(p.relative_to(model_dir).as_posix().encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:20]


def export(st_model: Any, model_dir: Path, backend: str, cache_dir: Path | None = None) -> Path:
    """The ONNX file of ``st_model`` for ``backend``, exported (offline) unless already cached."""
    require_onnxruntime(backend)
    _check_layout(st_model)
    out = Path(cache_dir or DEFAULT_CACHE) / cache_key(model_dir, backend) / "model.onnx"
    if out.exists():
        return out
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"model.{os.getpid()}.tmp.onnx")
    hf = st_model[0].auto_model.eval()

    class Hidden(torch.nn.Module):  # token vectors; pooling happens in numpy
        def __init__(self) -> None:
            super().__init__()
            self.m = hf

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    example = st_model.tokenizer(["a b", "c d e"], padding=True, return_tensors="pt")
    log.info("exporting the lyrics model to ONNX (%s) -> %s", backend, out)
    with torch.no_grad():
        # the TorchScript exporter writes one self-contained file (the dynamo one splits weights out)
        torch.onnx.export(
            Hidden(),
            tuple(example[k] for k in _INPUTS),
            str(tmp),
            input_names=list(_INPUTS),
            output_names=["hidden"],
            dynamic_axes={k: {0: "batch", 1: "seq"} for k in [*_INPUTS, "hidden"]},
            opset_version=_OPSET,
            dynamo=False,
        )
    if backend == "onnx-int8":
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        q = MatMulNBitsQuantizer(
            onnx.load(str(tmp)), bits=8, block_size=32, is_symmetric=True, accuracy_level=4
        )
        q.process()
        q.model.save_model_to_file(str(tmp), use_external_data_format=False)
    tmp.replace(out)  # atomic: a concurrent or interrupted export never leaves half a file
    return out


class OnnxSentenceModel:
    """The part of ``SentenceTransformer`` the lyrics encoder uses, running in onnxruntime."""

    def __init__(self, st_model: Any, model_dir: Path, backend: str, cache_dir: Path | None = None) -> None:
        import onnxruntime as ort
        import torch

        self.path = export(st_model, model_dir, backend, cache_dir)
        self.tokenizer = st_model.tokenizer
        self.max_seq_length = int(st_model.max_seq_length)
        self.normalize = len(st_model) > 2  # a Normalize module
        get = getattr(st_model, "get_embedding_dimension", None) or st_model.get_sentence_embedding_dimension
        self._dim = int(get())
        so = ort.SessionOptions()
        so.intra_op_num_threads = torch.get_num_threads()  # the same choice as the torch backend
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self.session.get_inputs()]

    def get_embedding_dimension(self) -> int:
        return self._dim

    def encode(
        self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = False, **_: Any
    ) -> np.ndarray:
        """``(n, dim)`` float32, in input order (batches are formed by token length)."""
        texts = list(texts)
        out = np.zeros((len(texts), self._dim), np.float32)
        if not texts:
            return out
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_seq_length)["input_ids"]]  # fmt: skip
        order = np.argsort(lengths, kind="stable")
        for s in range(0, len(texts), batch_size):
            idx = order[s : s + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
            hidden = self.session.run(None, {k: enc[k].astype(np.int64) for k in self._inputs})[
                0
            ]  # (B, T, D)
            mask = enc["attention_mask"][..., None].astype(np.float32)
            vec = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)  # mean over tokens
            if self.normalize or normalize_embeddings:
                vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
            out[idx] = vec
        return out
