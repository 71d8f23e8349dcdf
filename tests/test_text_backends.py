"""lyrics.backend: the sentence-transformers model run by onnxruntime (float32 and 8-bit)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from musiclust.params import ParamsError, parse_params
from musiclust.text.encoders import build_encoder
from musiclust.text.models import BUNDLED_MODEL
from musiclust.text.onnx_backend import BackendUnavailableError

ST_DEFAULT = f"sentence-transformers:{BUNDLED_MODEL}"
# short synthetic lyrics in the corpus's languages, one long enough to be cut into chunks
TEXTS = [
    "I hear your name whispered on the wind\nit's a sound that makes me cry",
    "Ich geh' die Straße lang und denk an dich, die Nacht ist kalt " * 30,
    "আমি তোমাকে ভালোবাসি, এই রাত শেষ হবে না",
    "ami tomake bhalobashi, ei raat shesh hobe na",
    "Dancing in the neon light until the morning comes",
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    return tmp_path_factory.mktemp("onnx_cache")


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return build_encoder(ST_DEFAULT, show_progress=False).encode(TEXTS)


@pytest.mark.parametrize(("backend", "min_cos"), [("onnx", 0.9999), ("onnx-int8", 0.99)])
def test_onnx_backends_give_the_torch_vectors(backend, min_cos, onnx_cache, torch_vectors):
    enc = build_encoder(ST_DEFAULT, show_progress=False, backend=backend, cache_dir=onnx_cache)
    assert enc.backend == backend and enc.dim == torch_vectors.shape[1]
    x = enc.encode(TEXTS)
    assert x.dtype == np.float32 and x.shape == torch_vectors.shape
    cos = (x * torch_vectors).sum(axis=1)
    assert cos.min() >= min_cos, f"{backend}: cosine to torch float32 {np.round(cos, 4)}"
    # the export lives in the cache, one folder per model/backend/library versions
    assert [p.name for p in onnx_cache.rglob("*.onnx")].count("model.onnx") >= 1


def test_onnx_backend_is_deterministic_and_reuses_its_export(onnx_cache):
    from musiclust.text import encoders

    a = build_encoder(ST_DEFAULT, show_progress=False, backend="onnx-int8", cache_dir=onnx_cache)
    path, mtime = a.model.path, a.model.path.stat().st_mtime_ns
    encoders._load_sentence_transformer.cache_clear()  # a fresh session on the cached file
    b = build_encoder(ST_DEFAULT, show_progress=False, backend="onnx-int8", cache_dir=onnx_cache)
    assert b.model is not a.model and b.model.path == path and path.stat().st_mtime_ns == mtime
    assert a.encode(TEXTS).tobytes() == b.encode(TEXTS).tobytes()
    # a text's vector does not depend on the order of the batch (batches are sorted by length)
    assert np.array_equal(b.encode(TEXTS[::-1])[::-1], b.encode(TEXTS))


def test_onnx_backend_without_onnxruntime_fails_fast_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import and find_spec both fail
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "onnxruntime" else object()
    )
    with pytest.raises(
        BackendUnavailableError, match=r"lyrics.backend: 'onnx' needs .*onnxruntime.*\[onnx\]"
    ):
        build_encoder(ST_DEFAULT, show_progress=False, backend="onnx", cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing exported


def test_backend_param_is_checked():
    assert parse_params({"lyrics": {"backend": "onnx-int8"}}).lyrics.backend == "onnx-int8"
    with pytest.raises(ParamsError, match="lyrics.backend"):
        parse_params({"lyrics": {"backend": "openvino"}})
    with pytest.raises(ParamsError, match="lyrics.precision bfloat16 applies to lyrics.backend torch"):
        parse_params({"lyrics": {"backend": "onnx", "precision": "bfloat16"}})
    with pytest.raises(ValueError, match="lyrics.backend"):
        build_encoder(ST_DEFAULT, backend="tensorrt")
