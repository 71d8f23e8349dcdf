"""``data/configs/<key>/``: what one ``train@<key>`` stage trains with (the ``configure`` stage's output).

- ``settings.json``: ``{"key", "settings", "train", "seeds"}``. ``settings`` are the model's
  resolved constructor settings: its ``models.<key>`` block, the top-level params it reads
  (``beta`` for ``beta_vae``) and the settings its key fixes (:meth:`musiclust.models.ModelSpec.resolve`);
  ``train`` is params.yaml's ``train`` section without ``models`` (which models run is not a
  setting of any of them); ``seeds`` the seeds each model is trained on.
- ``lyrics.parquet``: a byte copy of ``data/lyrics.parquet``, only for models that read lyrics.
- ``code.txt``: the SHA-256 (hex) of the code a train stage runs
  (:data:`musiclust.training.configure.TRAIN_CODE`). dvc.yaml lists that code once, as deps of
  ``configure``, instead of once in each of the 14 train stages: a change to it changes every
  folder, so every model is trained again, as DVC would do with the deps listed per stage, and
  dvc.lock, which DVC reads and rewrites after every stage it runs, is a third shorter.

One folder per model, so a train stage depends on exactly what it reads: ``-S beta=8`` changes
only ``beta_vae/settings.json``, a new lyrics encoder only the lyrics-reading models' folders,
and choosing fewer ``train.models`` changes no folder that remains.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musiclust.fileio import atomic_write_bytes, read_json, write_json
from musiclust.params import ParamsError, TrainParams, build_section

SETTINGS = "settings.json"
LYRICS = "lyrics.parquet"
CODE = "code.txt"


@dataclass(frozen=True)
class ModelConfig:
    """One model's folder, read back: its key, settings, training settings, seeds and lyrics copy."""

    key: str
    settings: dict[str, Any]
    train: TrainParams
    seeds: tuple[int, ...]
    #: the lyrics table this model reads, None for a model that reads no lyrics
    lyrics: Path | None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def train_record(train: TrainParams) -> dict[str, Any]:
    """The ``train`` section as written to ``settings.json`` (without ``models``)."""
    return _plain({k: v for k, v in dataclasses.asdict(train).items() if k != "models"})


def write(
    out_dir: str | Path,
    key: str,
    settings: Mapping[str, Any],
    train: TrainParams,
    seeds: Sequence[int],
    lyrics: str | Path | None,
    code: str,
) -> None:
    """Write ``out_dir/<key>/`` (``lyrics``: the table to copy, or None for an audio-only model;
    ``code``: the hex digest of the training code)."""
    folder = Path(out_dir) / key
    folder.mkdir(parents=True, exist_ok=True)
    record = {"key": key, "settings": _plain(settings), "train": train_record(train), "seeds": list(seeds)}
    write_json(folder / SETTINGS, record)
    atomic_write_bytes(folder / CODE, f"{code}\n".encode("ascii"))
    if lyrics is not None:
        shutil.copyfile(lyrics, folder / LYRICS)


def read(folder: str | Path) -> ModelConfig:
    """Read one model's folder written by :func:`write`."""
    folder = Path(folder)
    path = folder / SETTINGS
    if not path.is_file():
        raise ParamsError(f"{path}: no such file; run the configure stage first (dvc repro)")
    rec = read_json(path)
    lyrics = folder / LYRICS
    return ModelConfig(
        key=str(rec["key"]),
        settings=dict(rec["settings"]),
        train=build_section(TrainParams, rec["train"], "train"),
        seeds=tuple(int(s) for s in rec["seeds"]),
        lyrics=lyrics if lyrics.is_file() else None,
    )
