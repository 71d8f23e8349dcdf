"""Run the featurizer over a whole collection: parallel, streaming, in order.

Work is cut into small batches of clips (a run of rows of one audio shard, or a list of
audio files). A process pool (``features.workers``; one BLAS/FFT thread per worker, since
two processes on two cores beat one process with two threads on these small matrices)
featurizes the batches; the parent receives them *in order* and streams tensor sets into
``.npy`` shards as they arrive, so memory does not grow with the collection (only the
small per-clip vectors are kept until the end). Workers read their own audio (memory
maps of the int16 shards, or the files), so no audio crosses process boundaries.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from musiclust.compute import map_ordered, resolve_ray_address
from musiclust.contracts import features as contract
from musiclust.contracts import segments as segments_contract
from musiclust.contracts.features import MODEL_SETS
from musiclust.contracts.shards import ShardWriter, from_pcm16, shard_path
from musiclust.features.extract import (
    FeatureConfig,
    Featurizer,
    feature_columns,
    tensor_shapes,
)
from musiclust.features.pretrained import PRETRAINED_SET, PretrainedEmbedder, resolve_model
from musiclust.fileio import UserInputError, disk_full_stops

log = logging.getLogger(__name__)

#: Frames per batch: large enough for efficient FFT/BLAS calls, small enough to stay in cache-sized
#: buffers (about 8 MB of float32 frames at n_fft 2048).
FRAMES_PER_BATCH = 1024
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class NoClipsError(UserInputError):
    """The segment folder holds no clip to featurize."""


class StaleSegmentsError(ValueError, UserInputError):
    """The segment folder was written with other settings (or by hand): re-run the segment stage."""


@dataclass(frozen=True)
class ShardTask:
    """Rows ``[start, stop)`` of one int16 clip shard."""

    path: str
    start: int
    stop: int


@dataclass(frozen=True)
class FileTask:
    """Audio files, each decoded, then cut or zero-padded to ``n_samples``."""

    paths: tuple[str, ...]
    n_samples: int


# --------------------------------------------------------------------------- workers

_WORKER: dict = {}


def _keep_freed_memory() -> None:
    """Let glibc reuse freed large blocks instead of returning them to the kernel.

    Every batch allocates the same few multi-megabyte temporaries (frames, spectra). By
    default glibc serves blocks that large with fresh ``mmap`` calls and unmaps them when
    freed, so each batch pays page faults to touch new zeroed pages; measured, that was
    about a third of a worker's time. Raising the mmap and trim thresholds keeps them in
    the heap for reuse; a worker's memory stays at one batch's working set. No-op where
    glibc's ``mallopt`` is unavailable.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 64 * 2**20)
    mallopt(m_trim_threshold, 256 * 2**20)
    mallopt(m_top_pad, 16 * 2**20)


def _init_worker(featurizer: Featurizer, sample_rate: int) -> None:
    """Pool initializer: one thread per BLAS/FFT library, the featurizer kept per process."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    if sys.platform.startswith("linux"):
        _keep_freed_memory()
    from threadpoolctl import threadpool_limits

    _WORKER["limits"] = threadpool_limits(1)  # kept alive for the life of the worker
    _WORKER["featurizer"] = featurizer
    _WORKER["sample_rate"] = sample_rate


def _load(task: ShardTask | FileTask, sample_rate: int) -> np.ndarray:
    if isinstance(task, ShardTask):
        try:
            shard = np.load(task.path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"{task.path}: cannot read clip shard ({exc}); re-run the segment stage"
            ) from None
        return from_pcm16(shard[task.start : task.stop])
    import soundfile as sf

    from musiclust.audio.io import downmix, load_audio

    out = np.zeros((len(task.paths), task.n_samples), np.float32)
    for i, p in enumerate(task.paths):
        data, sr = sf.read(p, dtype="float32", always_2d=True, frames=task.n_samples)
        y = downmix(data)
        if sr != sample_rate:
            y = load_audio(p, sample_rate)[: task.n_samples]
        out[i, : len(y)] = y
    return out


def _run_task(task: ShardTask | FileTask) -> tuple[dict[str, np.ndarray], int]:
    """Featurize one batch; returns its outputs and how many non-finite values were replaced."""
    outputs = _WORKER["featurizer"](_load(task, _WORKER["sample_rate"]))
    bad = 0
    for name, arr in outputs.items():
        finite = np.isfinite(arr)
        if not finite.all():  # never expected; guarded so one odd clip cannot poison a scaler
            bad += int((~finite).sum())
            outputs[name] = np.where(finite, arr, 0).astype(arr.dtype)
    return outputs, bad


def _end_worker() -> None:
    """Undo :func:`_init_worker` when the batches ran in this process."""
    _WORKER.pop("limits").restore_original_limits()
    _WORKER.clear()


def iter_features(
    tasks: Sequence[ShardTask | FileTask],
    featurizer: Featurizer,
    sample_rate: int,
    workers: int,
    ray_address: str | None = None,
) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """Featurize ``tasks`` with ``workers`` processes (or Ray tasks), yielding results in task order."""
    yield from map_ordered(
        _run_task,
        tasks,
        workers=workers,
        initializer=_init_worker,
        initargs=(featurizer, sample_rate),
        cleanup=_end_worker,
        ray_address=ray_address,
    )


def batch_clips(cfg: FeatureConfig, n_samples: int) -> int:
    """Clips per batch so that a batch holds about :data:`FRAMES_PER_BATCH` STFT frames."""
    frames = 1 + n_samples // cfg.hop_length
    return max(1, FRAMES_PER_BATCH // frames)


# --------------------------------------------------------------------------- output


class FeatureSink:
    """Collects batches in order: vectors in memory (small), tensors streamed to shards."""

    def __init__(self, out_dir: str | Path, cfg: FeatureConfig) -> None:
        self.out_dir = Path(out_dir)
        self.cfg = cfg
        self.columns = feature_columns(cfg)
        self.vectors: dict[str, list[np.ndarray]] = {name: [] for name in self.columns}
        self.writers: dict[str, ShardWriter] = {}
        self.where: dict[str, list[tuple[int, int]]] = {}
        for name, (shape, dtype) in tensor_shapes(cfg).items():
            self.writers[name] = contract.tensor_writer(self.out_dir, name, shape, dtype)
            self.where[name] = []
        self.n = 0
        self.nonfinite = 0

    def add(self, outputs: dict[str, np.ndarray], nonfinite: int = 0) -> int:
        """Take one batch of featurizer outputs; returns its number of clips."""
        n = None
        for name, arr in outputs.items():
            n = len(arr)
            if name in self.vectors:
                self.vectors[name].append(arr)
            else:
                self.where[name].extend(self.writers[name].add(arr))
        self.n += n or 0
        self.nonfinite += nonfinite
        return n or 0

    def add_set(self, name: str, columns: list[str], x: np.ndarray, nonfinite: int = 0) -> None:
        """Take a whole vector set computed outside the featurizer (the pretrained embeddings)."""
        self.columns[name] = list(columns)
        self.vectors[name] = [x]
        self.nonfinite += nonfinite

    def close(self) -> None:
        """Flush the last tensor shards."""
        for w in self.writers.values():
            w.close()

    def vector(self, name: str) -> np.ndarray:
        """All rows of vector set ``name`` so far, ``(n, n_columns)`` float32."""
        blocks = self.vectors[name]
        return np.concatenate(blocks) if blocks else np.zeros((0, len(self.columns[name])), np.float32)


def embed_segments(
    embedder: PretrainedEmbedder,
    seg: pd.DataFrame,
    segments_dir: Path,
    prefix: str,
    sample_rate: int,
    batch_size: int,
) -> tuple[np.ndarray, int]:
    """Pretrained embeddings of every clip of ``seg`` (shard order), ``batch_size`` clips at a time.

    Runs in this process (one model in memory; ``features.pretrained.threads`` torch threads),
    not in the featurizer's worker pool. Returns ``(x (n_clips, dim) float32, non-finite
    values replaced by 0)``.
    """
    blocks, bad = [], 0
    with tqdm(total=len(seg), desc="pretrained", unit="clip", mininterval=1.0) as bar:
        for s, grp in seg.groupby("shard", sort=True):
            path = str(shard_path(segments_dir, prefix, int(s)))
            lo, hi = int(grp["row"].iloc[0]), int(grp["row"].iloc[-1]) + 1
            for a in range(lo, hi, batch_size):
                x = embedder.embed(
                    _load(ShardTask(path, a, min(a + batch_size, hi)), sample_rate), sample_rate
                )
                finite = np.isfinite(x)
                if not finite.all():
                    bad += int((~finite).sum())
                    x = np.where(finite, x, 0).astype(np.float32)
                blocks.append(x)
                bar.update(len(x))
    x = np.concatenate(blocks) if blocks else np.zeros((0, embedder.dim), np.float32)
    return x, bad


def featurize_segments(
    segments_dir: str | Path,
    out_dir: str | Path,
    sample_rate: int,
    features: object,
    compute: object | None = None,
) -> dict:
    """Featurize every clip of ``segments_dir`` into ``out_dir`` (layout: docs/pipeline.md).

    ``features`` is ``params.features``; ``compute`` (``params.compute``, or ``$RAY_ADDRESS``)
    may send the batches to Ray instead of ``features.workers`` local processes
    (:mod:`musiclust.compute`), with the same outputs. Writes ``<set>.parquet`` for vector sets (rows in
    the order of ``segments.parquet``), ``<set>/index.parquet`` + ``<set>/shard-*.npy`` for
    tensor sets, ``scalers.json`` (fit on the train split only) and ``report.json``.
    Returns the report.
    """
    t0 = time.perf_counter()
    segments_dir, out_dir = Path(segments_dir), Path(out_dir)
    seg, table, prefix = _read_clips(segments_dir, sample_rate)
    with disk_full_stops(out_dir):
        return _featurize(segments_dir, out_dir, sample_rate, features, compute, seg, table, prefix, t0)


def _featurize(
    segments_dir: Path,
    out_dir: Path,
    sample_rate: int,
    features: object,
    compute: object | None,
    seg: pd.DataFrame,
    table: Path,
    prefix: str,
    t0: float,
) -> dict:
    """The body of :func:`featurize_segments` once the clips are read."""
    cfg = FeatureConfig.from_params(sample_rate, features)
    # the pretrained model is located (and its code checked) before any work, so a missing one fails
    # at once; it is loaded after the worker pool has run, so that no worker is forked from a process
    # holding torch's thread pools
    source = resolve_model(features.pretrained) if PRETRAINED_SET in cfg.sets else None
    if not len(seg):
        raise NoClipsError(
            f"{table}: no usable clip to featurize (the table is empty); re-run the segment stage, "
            "which names the segment setting to change"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    contract.clear(out_dir)
    tasks, n_samples = _shard_tasks(seg, table, segments_dir, prefix, cfg)

    sink = FeatureSink(out_dir, cfg)
    if any(s not in MODEL_SETS for s in cfg.sets):
        featurizer = Featurizer(cfg)
        with tqdm(total=len(seg), desc="featurize", unit="clip", mininterval=1.0) as bar:
            for outputs, bad in iter_features(
                tasks, featurizer, sample_rate, features.workers, ray_address=resolve_ray_address(compute)
            ):
                bar.update(sink.add(outputs, bad))
        if sink.n != len(seg):
            raise RuntimeError(f"featurized {sink.n} clips but {table} lists {len(seg)}")
    sink.close()
    embedder = PretrainedEmbedder(features.pretrained, source) if source is not None else None
    if embedder is not None:
        x, bad = embed_segments(
            embedder, seg, segments_dir, prefix, sample_rate, features.pretrained.batch_size
        )
        sink.add_set(PRETRAINED_SET, embedder.columns, x, bad)
    scaler_rows = _write_sets(out_dir, seg, sink)

    elapsed = time.perf_counter() - t0
    audio_s = len(seg) * n_samples / sample_rate
    report = _report(cfg, sink, len(seg), scaler_rows, features.workers, audio_s, embedder)
    contract.write_report(out_dir, report)
    # timings go to the log only: report.json is a cached output and must not change run to run
    log.info(
        "featurized %d clips (%s) in %.1f s, %.0fx realtime%s",
        len(seg),
        ", ".join(cfg.sets),
        elapsed,
        audio_s / elapsed if elapsed > 0 else 0,
        f"; {sink.nonfinite} non-finite values replaced" if sink.nonfinite else "",
    )
    return report


def _report(
    cfg: FeatureConfig,
    sink: FeatureSink,
    n_clips: int,
    scaler_rows: str,
    workers: int,
    audio_s: float,
    embedder: PretrainedEmbedder | None,
) -> dict:
    """``report.json``: what was computed (no timings: it is a cached output)."""
    report = {
        "clips": n_clips,
        "sets": list(cfg.sets),
        "columns": {k: len(v) for k, v in sink.columns.items()},
        "tensor_shapes": {k: list(v[0]) for k, v in tensor_shapes(cfg).items()},
        "scalers_fit_on": scaler_rows,
        "nonfinite_replaced": sink.nonfinite,
        "workers": workers,
        "audio_seconds": round(audio_s, 1),
    }
    if embedder is not None:  # only then, so that the default report is unchanged
        report["pretrained"] = embedder.describe()
    return report


def _read_clips(segments_dir: Path, sample_rate: int) -> tuple[pd.DataFrame, Path, str]:
    """The clips to featurize (``segment_id, split, shard, row``), the table's path and the shards'
    file prefix; refuses clips cut at another sample rate."""
    table = segments_contract.table_path(segments_dir)
    seg = segments_contract.read_segments(
        segments_dir, columns=["segment_id", "split", "shard", "row"], require=("segment_id", "split")
    )
    seg_report = segments_contract.read_report(segments_dir)
    audio_meta = (seg_report or {}).get("audio", {})
    if audio_meta.get("sample_rate") not in (None, sample_rate):
        raise StaleSegmentsError(
            f"{segments_dir}: clips were cut at {audio_meta['sample_rate']} Hz but audio.sample_rate is "
            f"{sample_rate}; re-run the segment stage"
        )
    return seg, table, segments_contract.audio_prefix(seg_report)


def _shard_tasks(
    seg: pd.DataFrame, table: Path, segments_dir: Path, prefix: str, cfg: FeatureConfig
) -> tuple[list[ShardTask], int]:
    """Batches of consecutive shard rows (``batch_clips`` each) and the samples per clip."""
    if not len(seg):
        return [], 0
    if not (
        seg["shard"].is_monotonic_increasing and (seg.groupby("shard")["row"].diff().dropna() == 1).all()
    ):
        raise StaleSegmentsError(f"{table}: rows are not in shard order; re-run the segment stage")
    n_samples = int(
        np.load(shard_path(segments_dir, prefix, int(seg["shard"].iloc[0])), mmap_mode="r").shape[1]
    )
    per = batch_clips(cfg, n_samples)
    tasks: list[ShardTask] = []
    for s, grp in seg.groupby("shard", sort=True):
        path = str(shard_path(segments_dir, prefix, int(s)))
        lo, hi = int(grp["row"].iloc[0]), int(grp["row"].iloc[-1]) + 1
        tasks += [ShardTask(path, a, min(a + per, hi)) for a in range(lo, hi, per)]
    return tasks, n_samples


def _write_sets(out_dir: Path, seg: pd.DataFrame, sink: FeatureSink) -> str:
    """Vector sets, tensor indexes and the train-split scalers; returns which rows the scalers saw."""
    ids = seg["segment_id"].reset_index(drop=True)
    train = (seg["split"] == "train").to_numpy()
    scaler_rows = "train"
    if not train.any():
        log.warning("no clip is in the train split: scalers are fit on all clips")
        train, scaler_rows = np.ones(len(seg), bool), "all (no train clips)"
    scalers = {}
    for name, cols in sink.columns.items():
        x = sink.vector(name)
        contract.write_vector_set(out_dir, name, ids, x, cols)
        if len(x):
            scalers[name] = contract.Scaler.fit(cols, x[train].astype(np.float64))
    for name, where in sink.where.items():
        contract.write_tensor_index(out_dir, name, ids, where)
    contract.write_scalers(out_dir, scalers)
    return scaler_rows


def featurize_files(
    paths: Iterable[str | Path],
    cfg: FeatureConfig,
    n_samples: int,
    workers: int,
    out_dir: str | Path | None = None,
) -> FeatureSink:
    """Featurize audio files (each cut/padded to ``n_samples``) the way the stage does shards.

    Used by ``musiclust bench featurize``; tensor sets stream into ``out_dir`` shards.
    """
    paths = [str(p) for p in paths]
    per = batch_clips(cfg, n_samples)
    tasks = [FileTask(tuple(paths[i : i + per]), n_samples) for i in range(0, len(paths), per)]
    import tempfile

    with tempfile.TemporaryDirectory(prefix="musiclust-feat-") as tmp:
        sink = FeatureSink(out_dir or tmp, cfg)
        for outputs, bad in tqdm(
            iter_features(tasks, Featurizer(cfg), cfg.sample_rate, workers),
            total=len(tasks),
            desc="featurize",
            unit="batch",
            mininterval=1.0,
            disable=None,
        ):
            sink.add(outputs, bad)
        sink.close()
    return sink
