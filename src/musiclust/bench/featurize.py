"""``musiclust bench featurize``: the project's featurizer against a plain librosa loop.

Generates ``--clips`` synthetic music clips (chords with harmonics, a beat envelope, noise)
as 22,050 Hz 16-bit WAV files in a temporary folder, then in the same run times

1. the project's featurizer end to end from the WAV files (process pool start-up, decoding,
   all requested feature sets, tensor shards written), and
2. a plain loop over the same files: ``librosa.load`` + ``librosa.feature.mfcc`` +
   ``librosa.feature.melspectrogram`` per clip.

One warm-up call of the plain loop runs before either is timed (librosa loads its submodules
on first use). The featurizer's time includes building its filterbanks and starting its
worker pool.

By default the featurizer computes ``features.sets`` of ``--params`` (the stage's own
work, so this number and the featurize stage's log line agree); the plain loop's ratio is
like for like only with ``--sets logmel,mfcc_seq`` (a mel spectrogram and MFCCs per clip).
Before commit 4afcd0f the default was ``logmel,mfcc_seq``, which is why the benchmark reported
about 2.5x the realtime factor of a default ``dvc repro``: ``spectral`` (contrast, roll-off,
chroma, tempo) costs about three times as much per clip as mel spectrogram and MFCCs together.
``musiclust bench pipeline`` times the stage itself on real or synthetic songs.

Peak memory is the largest proportional set size (PSS: shared pages counted once) of the
featurizer's process tree (this process plus its workers), sampled every 50 ms while it runs. The last line is::

    featurize: <X>x realtime, <R>x the plain librosa loop, peak <M> MiB
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from musiclust.bench.memory import PeakMemory, cpu_seconds
from musiclust.bench.synth import SAMPLE_RATE, write_clips

if TYPE_CHECKING:
    from musiclust.features.extract import FeatureConfig

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``musiclust bench featurize``."""
    parser.add_argument("--clips", type=int, default=1000, help="number of clips to generate (default 1000)")
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length in seconds (default 3)")
    parser.add_argument(
        "--sets",
        default=None,
        help="comma-separated feature sets (default: features.sets of --params, what the stage computes; "
        "logmel,mfcc_seq is the same work as the plain loop's melspectrogram + mfcc)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: features.workers)"
    )
    parser.add_argument(
        "--baseline-clips",
        type=int,
        default=None,
        help="clips timed in the plain librosa loop (default min(clips, 200); rate is per clip)",
    )
    parser.add_argument(
        "--params", default="params.yaml", help="params file for n_mfcc/n_fft/hop/n_mels (defaults if absent)"
    )
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; prints the summary line last. Returns 0."""
    import librosa  # imported up front: both contenders start with it loaded

    cfg, workers = _feature_config(args)
    n_samples = int(round(args.seconds * SAMPLE_RATE))
    audio_s = args.clips * n_samples / SAMPLE_RATE
    n_base = min(args.clips, args.baseline_clips or 200)

    with tempfile.TemporaryDirectory(prefix="musiclust-bench-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        (tmp / "wav").mkdir()
        paths = write_clips(tmp / "wav", args.clips, args.seconds, args.seed, workers=max(1, workers))
        log.info(
            "wrote %d clips of %.1f s (%.0f s of audio) in %.1f s",
            args.clips,
            args.seconds,
            audio_s,
            time.perf_counter() - t,
        )

        def plain(path: Path) -> None:
            y, sr = librosa.load(path, sr=SAMPLE_RATE)
            librosa.feature.mfcc(y=y, sr=sr, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
            librosa.feature.melspectrogram(
                y=y, sr=sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels
            )

        # warm-up before either is timed: librosa loads its submodules lazily on first use, and
        # the featurizer builds its filterbanks with librosa, so whoever ran first would pay for both
        plain(paths[0])
        ours, peak_mib = _time_featurizer(paths, cfg, n_samples, workers, tmp / "features")

        t = time.perf_counter()
        for p in paths[:n_base]:
            plain(p)
        base = (time.perf_counter() - t) / n_base
        log.info("plain librosa loop: %d clips, %.2f ms/clip", n_base, 1000 * base)

    realtime = audio_s / ours
    ratio = base / (ours / args.clips)
    print(
        f"featurize: {realtime:.0f}x realtime, {ratio:.1f}x the plain librosa loop, peak {peak_mib:.0f} MiB"
    )
    return 0


def _feature_config(args: argparse.Namespace) -> tuple[FeatureConfig, int]:
    """``(FeatureConfig, workers)``: the sets and settings of ``--sets``/``--workers`` or ``--params``."""
    from musiclust.features.extract import FeatureConfig
    from musiclust.params import FEATURE_SETS, FeatureParams, load_params

    fp = load_params(args.params).features if Path(args.params).exists() else FeatureParams()
    sets = tuple(s.strip() for s in args.sets.split(",") if s.strip()) if args.sets else tuple(fp.sets)
    for s in sets:
        if s not in FEATURE_SETS:
            raise SystemExit(f"--sets: {s!r} is not one of {', '.join(FEATURE_SETS)}")
    workers = args.workers if args.workers is not None else fp.workers
    cfg = FeatureConfig(
        sample_rate=SAMPLE_RATE,
        sets=sets,
        n_mfcc=fp.n_mfcc,
        n_fft=fp.n_fft,
        hop_length=fp.hop_length,
        n_mels=fp.n_mels,
        logmel_frames=fp.logmel_frames,
    )
    return cfg, workers


def _time_featurizer(
    paths: list[Path], cfg: FeatureConfig, n_samples: int, workers: int, out_dir: Path
) -> tuple[float, float]:
    """``(wall seconds, peak MiB)`` of the project's featurizer over ``paths``; logs CPU time per clip."""
    from musiclust.features.pipeline import featurize_files

    cpu0 = cpu_seconds()
    with PeakMemory() as mem:
        t = time.perf_counter()
        sink = featurize_files(paths, cfg, n_samples, workers, out_dir=out_dir)
        ours = time.perf_counter() - t
    cpu = cpu_seconds() - cpu0
    assert sink.n == len(paths)
    # CPU time says what the wall clock cannot on a shared machine: how much work a clip costs
    log.info(
        "ours: %d clips, sets %s, %d workers: %.2f s wall (%.2f ms/clip), %.2f ms CPU/clip, "
        "peak %.0f MiB, load average %.1f",
        len(paths),
        ",".join(cfg.sets),
        workers,
        ours,
        1000 * ours / len(paths),
        1000 * cpu / len(paths),
        mem.peak_mib,
        os.getloadavg()[0],
    )
    return ours, mem.peak_mib
