"""``musiclust bench pipeline``: the per-song stages on N songs, timed stage by stage.

Runs the same library calls as the DVC stages (``stages/download.py``, ``segment.py``,
``featurize.py``, ``embed_lyrics.py`` each make exactly one of these calls), with the
params of ``--params``, in a temporary folder that is deleted afterwards. Input:

- synthetic (default): ``--songs`` stereo songs of ``--seconds`` at 44.1 kHz with
  lyrics, as MP3 (``--format``; only ``--distinct`` of them are encoded, the others are
  hard links under their own names, because MP3 encoding costs seconds per song);
- ``--manifest CSV``: the first ``--songs`` rows of a manifest (``data.source: manifest``);
- ``--folder DIR``: the first ``--songs`` audio files of a folder (``data.source: folder``).

Preparing the input is not timed. Per stage it prints wall time, the realtime factor
(seconds of audio per second of wall time: song audio for download and segment, clip
audio for featurize), units per second (songs, clips, or distinct lyrics chunks the
model encoded), CPU seconds of this process and its workers, the realtime factor per CPU
second (what one quiet core does: the number to compare on a busy machine, where the wall
clock also counts other people's work) and peak memory (PSS of this process and its
workers, so shared pages count once), next to the throughput targets of ``TARGETS`` (measured on
2 cores). Timings go to the terminal and, with ``--out FILE``, to a JSON file the user
names; never into a pipeline output.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from musiclust.bench.memory import PeakMemory, cpu_seconds

log = logging.getLogger(__name__)

STAGES = ("download", "segment", "featurize", "embed_lyrics")

#: Throughput targets on 2 cores: stage -> (column, minimum). ``embed_lyrics`` is three times
#: the 5.4 chunks/s measured before the targets were set (docs/performance.md).
TARGETS: dict[str, tuple[str, float]] = {
    "segment": ("realtime", 1000.0),
    "featurize": ("realtime", 2500.0),
    "embed_lyrics": ("per_s", 3 * 5.4),
}


@dataclass
class StageTiming:
    """One stage's measurements."""

    stage: str
    seconds: float
    cpu_seconds: float
    peak_mib: float
    audio_seconds: float
    units: int
    unit: str

    @property
    def realtime(self) -> float | None:
        return self.audio_seconds / self.seconds if self.audio_seconds and self.seconds > 0 else None

    @property
    def realtime_per_cpu(self) -> float | None:
        """Audio seconds per CPU second: what a quiet core would do, robust to a busy machine."""
        return self.audio_seconds / self.cpu_seconds if self.audio_seconds and self.cpu_seconds > 0 else None

    @property
    def per_s(self) -> float | None:
        return self.units / self.seconds if self.seconds > 0 else None

    def target(self) -> tuple[str, float, bool] | None:
        """``(what, minimum, met)`` for stages with a target."""
        if self.stage not in TARGETS:
            return None
        col, minimum = TARGETS[self.stage]
        value = getattr(self, col) or 0.0
        unit = "x realtime" if col == "realtime" else f" {self.unit}/s"
        return f">= {minimum:g}{unit}", minimum, value >= minimum

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        t = self.target()
        d.update(
            realtime=self.realtime,
            realtime_per_cpu=self.realtime_per_cpu,
            per_s=self.per_s,
            target=t[0] if t else None,
            met=t[2] if t else None,
        )
        return d


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``musiclust bench pipeline``."""
    parser.add_argument("--songs", type=int, default=100, help="number of songs (default 100)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--manifest", default=None, help="use the first --songs rows of this manifest CSV")
    src.add_argument("--folder", default=None, help="use the first --songs audio files of this folder")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of a synthetic song (default 30)")
    parser.add_argument(
        "--format",
        default="mp3",
        choices=("mp3", "flac"),
        help="file format of the synthetic songs (44.1 kHz stereo; default mp3)",
    )
    parser.add_argument(
        "--distinct",
        type=int,
        default=16,
        help="synthetic songs actually encoded; the rest are links to them (default 16)",
    )
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated stages to time, in pipeline order (default {','.join(STAGES)})",
    )
    parser.add_argument("--params", default="params.yaml", help="params file (defaults if absent)")
    parser.add_argument("--out", default=None, help="also write the measurements as JSON to this file")
    parser.add_argument("--seed", type=int, default=0)


def _first_manifest_rows(manifest: Path, n: int, out: Path) -> Path:
    """The first ``n`` rows of ``manifest`` with local paths made absolute, written to ``out``."""
    from musiclust.data.manifest import read_table

    df = read_table(manifest).head(n).copy()
    base = manifest.resolve().parent
    for col in ("source", "lyrics_path"):
        if col in df.columns:
            df[col] = [_absolute(v, base) for v in df[col]]
    df.to_csv(out, index=False)
    return out


def _absolute(value: object, base: Path) -> object:
    """A relative local path made absolute against ``base``; URLs, searches and blanks unchanged."""
    if not isinstance(value, str) or not value.strip() or ":" in value.split("/")[0]:
        return value
    p = Path(value)
    return str(p if p.is_absolute() else base / p)


def _first_folder_files(folder: Path, n: int, out: Path) -> Path:
    """A folder of links to the first ``n`` audio files of ``folder`` (same layout, same labels)."""
    from musiclust.audio.io import AUDIO_EXTENSIONS

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)[:n]
    if not files:
        raise SystemExit(f"--folder {folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    for p in files:
        dst = out / p.relative_to(folder)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(p.resolve())
    labels = folder / "labels.csv"
    if labels.exists():
        df = pd.read_csv(labels, dtype=str, keep_default_na=False)
        chosen = {p.relative_to(folder).as_posix() for p in files}
        df = df[df["path"].isin(chosen)].copy() if "path" in df.columns else df
        if "lyrics_path" in df.columns:
            df["lyrics_path"] = [_absolute(v, folder.resolve()) for v in df["lyrics_path"]]
        df.to_csv(out / "labels.csv", index=False)
    return out


def _timed(stage: str, fn: Callable[[], tuple[float, int, str]]) -> StageTiming:
    cpu0 = cpu_seconds()
    with PeakMemory() as mem:
        t = time.perf_counter()
        audio_s, units, unit = fn()
        wall = time.perf_counter() - t
    return StageTiming(stage, wall, cpu_seconds() - cpu0, mem.peak_mib, audio_s, units, unit)


def run_pipeline(
    params: object,
    work: Path,
    stages: tuple[str, ...],
    manifest: Path | None = None,
    folder: Path | None = None,
) -> list[StageTiming]:
    """Run ``stages`` (in pipeline order) into ``work``: the stages' own library calls.

    ``params`` is a :class:`musiclust.params.Params`; ``manifest``/``folder`` replace
    ``data.source`` for the download stage. Returns one timing per stage run.
    """
    from musiclust.audio.segment import segment_corpus
    from musiclust.contracts.raw import read_songs
    from musiclust.data.acquire import acquire
    from musiclust.features.pipeline import featurize_segments
    from musiclust.text.embed import run as embed_lyrics

    raw, seg, feat, lyrics = work / "raw", work / "segments", work / "features", work / "lyrics.parquet"
    p = params
    if manifest is not None or folder is not None:
        data = dataclasses.replace(
            p.data,
            source="manifest" if manifest is not None else "folder",
            manifest=str(manifest or p.data.manifest),
            folder=str(folder or p.data.folder),
        )
        p = dataclasses.replace(p, data=data)

    def song_audio() -> float:
        return float(read_songs(raw, columns=["duration_s"], require=())["duration_s"].sum())

    def download() -> tuple[float, int, str]:
        res = acquire(p.data, p.download, p.audio, p.seed, raw, manifest=manifest, folder=folder)
        return song_audio(), int(res.report["ok"]), "songs"

    def segment() -> tuple[float, int, str]:
        rep = segment_corpus(raw, seg, p.audio, p.segment, p.data.label_columns, p.seed, p.compute)
        return song_audio(), int(rep["clips"]), "clips"

    def featurize() -> tuple[float, int, str]:
        rep = featurize_segments(seg, feat, p.audio.sample_rate, p.features, p.compute)
        return float(rep["audio_seconds"]), int(rep["clips"]), "clips"

    def embed() -> tuple[float, int, str]:
        summary = embed_lyrics(raw, seg, lyrics, p.lyrics, features_dir=feat)
        return 0.0, int(summary.n_chunks), "chunks"

    steps = {"download": download, "segment": segment, "featurize": featurize, "embed_lyrics": embed}
    return [_timed(s, steps[s]) for s in STAGES if s in stages]


def format_table(timings: list[StageTiming], label: str) -> str:
    """The per-stage table as Markdown (what the command prints)."""
    lines = [
        f"pipeline benchmark: {label}",
        "",
        "| stage | wall s | realtime | per s | CPU s | realtime per CPU s | peak MiB | target | met |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for t in timings:
        rt = f"{t.realtime:.0f}x" if t.realtime else ""
        per = f"{t.per_s:.1f} {t.unit}" if t.per_s is not None else ""
        rtc = f"{t.realtime_per_cpu:.0f}x" if t.realtime_per_cpu else ""
        tg = t.target()
        lines.append(
            f"| {t.stage} | {t.seconds:.1f} | {rt} | {per} | {t.cpu_seconds:.1f} | {rtc} | {t.peak_mib:.0f} | "
            f"{tg[0] if tg else ''} | {('yes' if tg[2] else 'NO') if tg else ''} |"
        )
    lines.append(
        f"| total | {sum(t.seconds for t in timings):.1f} | | | {sum(t.cpu_seconds for t in timings):.1f} | "
        f"| {max((t.peak_mib for t in timings), default=0):.0f} | | |"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Prepare the input, run the stages, print the table; returns 0."""
    from musiclust.bench.synth import write_songs
    from musiclust.params import Params, load_params

    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    for s in stages:
        if s not in STAGES:
            raise SystemExit(f"--stages: {s!r} is not one of {', '.join(STAGES)}")
    if args.songs < 1:
        raise SystemExit(f"--songs must be at least 1, got {args.songs}")
    params = load_params(args.params) if Path(args.params).exists() else Params()
    with tempfile.TemporaryDirectory(prefix="musiclust-bench-pipeline-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        (work / "input").mkdir()
        manifest = folder = None
        if args.manifest:
            src = Path(args.manifest)
            if not src.is_file():
                raise SystemExit(f"--manifest {src}: no such file")
            manifest = _first_manifest_rows(src, args.songs, work / "input" / "manifest.csv")
            # the copied manifest lives in a temporary folder: its rows' files stay where the user's are
            data = dataclasses.replace(
                params.data, allowed_roots=(*params.data.allowed_roots, str(src.resolve().parent))
            )
            params = dataclasses.replace(params, data=data)
            label = f"{args.songs} songs of {src}"
        elif args.folder:
            src = Path(args.folder)
            if not src.is_dir():
                raise SystemExit(f"--folder {src}: no such folder")
            folder = _first_folder_files(src, args.songs, work / "input")
            label = f"{args.songs} songs of {src}"
        else:
            manifest = write_songs(
                work / "input",
                args.songs,
                args.seconds,
                args.seed,
                args.format,
                distinct=args.distinct,
                workers=max(1, params.segment.workers or os.cpu_count() or 1),
            )
            label = f"{args.songs} synthetic {args.seconds:g} s songs, 44.1 kHz stereo {args.format.upper()}"
        log.info("prepared the input in %.1f s (not timed)", time.perf_counter() - t)
        timings = run_pipeline(params, work / "run", stages, manifest=manifest, folder=folder)
    label += f"; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    print(format_table(timings, label))
    if args.out:
        Path(args.out).write_text(
            json.dumps({"input": label, "stages": [t.as_dict() for t in timings]}, indent=2)
        )
    return 0
