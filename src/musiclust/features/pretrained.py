"""The ``pretrained`` feature set: clip embeddings from a pretrained audio model (``transformers``).

Two kinds of model, chosen by ``features.pretrained.kind`` (``auto`` reads the model's
``config.json``: ``model_type: clap`` is CLAP, anything else is taken as an encoder with
hidden states):

- ``clap``: CLAP (Wu, Chen et al., "Large-scale contrastive language-audio pretraining with
  feature fusion and keyword-to-caption augmentation", ICASSP 2023), e.g.
  ``laion/clap-htsat-unfused``. The clip embedding is ``ClapModel.get_audio_features``: the
  projected, L2-normalized audio embedding of the joint audio-text space. ``layer`` is ignored.
- ``hidden_states``: wav2vec 2.0 / HuBERT-style encoders and MERT (Li et al., "MERT:
  Acoustic Music Understanding Model with Large-Scale Self-supervised Training", ICLR 2024),
  loaded with ``AutoFeatureExtractor`` + ``AutoModel``. The clip embedding is one layer of
  ``hidden_states`` (``layer``: ``last``, an index, 0 being the input embedding, or ``mean``
  of the transformer layers 1..L, which the MERT paper found better than any single layer
  for several music tasks), mean-pooled over time. Clips of a batch have equal length, so
  there is no padding to mask.

Clips arrive at ``audio.sample_rate`` and are resampled one at a time (soxr, librosa's
resampler) to the feature extractor's ``sampling_rate``, so a clip's embedding does not depend
on the other clips of its batch (up to float rounding of batched matrix products). The model
runs in eval mode under ``torch.inference_mode`` with ``features.pretrained.threads`` intra-op
threads, so the same inputs give the same bytes run to run on one machine.

Where the model comes from (:func:`resolve_model`), offline first:

- a local directory (``save_pretrained`` output, or a ``huggingface-cli download`` folder):
  loaded with ``local_files_only``;
- a hub id: taken from the local Hugging Face cache when it is there; downloaded only with
  ``features.pretrained.allow_download: true`` on a machine where ``MUSICLUST_OFFLINE`` /
  ``HF_HUB_OFFLINE`` are not set and the hub answers. Otherwise :class:`PretrainedModelError`
  is raised at once, naming ``features.pretrained.model`` and what to do.

A model whose ``config.json`` has an ``auto_map`` (its code ships with the weights: MERT on
the hub) is refused unless ``features.pretrained.trust_remote_code`` is true.

The weights are not a DVC dependency (``dvc.yaml`` cannot depend on a folder named by a param
only when a set is selected); :func:`fingerprint` records the config's and every weight file's
SHA-256 in ``data/features/report.json`` instead, and replacing the weights in place needs
``dvc repro -f -s featurize`` (docs/features.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musiclust.fileio import UserInputError
from musiclust.hub import hub_reachable, offline_forced

log = logging.getLogger(__name__)

#: The feature set's name in ``features.sets`` / ``train.features``, and its column prefix.
PRETRAINED_SET = "pretrained"
#: Files of a model folder whose contents are fingerprinted (weights and configs).
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".json", ".py")
# a hub id: ``name`` or ``org/name`` (letters, digits, . _ -)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_KEY = "features.pretrained.model"


class PretrainedModelError(UserInputError, RuntimeError):
    """The pretrained model cannot be used as configured (the message names the key to change)."""


@dataclass(frozen=True)
class ModelSource:
    """Where the model is loaded from: a local ``path``, or ``repo_id`` to download (``path`` None)."""

    name: str
    path: Path | None
    repo_id: str | None
    origin: str  # "path" | "cache" | "download"


def column_names(dim: int) -> list[str]:
    """Columns of the set: ``pretrained_000`` ... ``pretrained_{dim-1}``."""
    return [f"{PRETRAINED_SET}_{i:03d}" for i in range(dim)]


def _download_help(name: str) -> str:
    safe = name.replace("/", "__")
    return (
        f"On a machine with internet run `huggingface-cli download {name} --local-dir weights/{safe}` "
        f"(newer hub: `hf download ...`), copy that folder here and set {_KEY}: weights/{safe}; "
        "or, where this machine may use the internet, set features.pretrained.allow_download: true "
        "and unset MUSICLUST_OFFLINE / HF_HUB_OFFLINE (the Makefile sets both to 1)."
    )


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local HF cache snapshot of ``repo_id`` (``$HF_HUB_CACHE`` or the default), or None; no network."""
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError:
        return None
    cache_dir = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
    try:
        path = Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, OfflineModeIsEnabled, OSError...: simply not cached
        return None
    return path if (path / "config.json").exists() else None


def _missing_packages_error(what: str) -> PretrainedModelError:
    return PretrainedModelError(
        f"the 'pretrained' feature set needs torch and transformers ({what}); install them with "
        "`pip install torch 'transformers>=4.56'` (or `pip install -e .`)"
    )


def _require_packages() -> None:
    """Raise :func:`_missing_packages_error` unless torch and transformers can be imported (none is)."""
    import importlib.util

    for pkg in ("torch", "transformers"):
        try:
            missing = importlib.util.find_spec(pkg) is None
        except ValueError:  # set to None in sys.modules: blocked
            missing = True
        if missing:
            raise _missing_packages_error(f"no module named {pkg!r}")


def resolve_model(params: Any) -> ModelSource:
    """Locate ``features.pretrained.model`` without loading it (fast; no network unless allowed).

    Raises :class:`PretrainedModelError` naming the key when torch/transformers are missing, the
    model is neither a local directory nor cached and may not or cannot be downloaded, or it
    ships code that ``features.pretrained.trust_remote_code`` does not allow.
    """
    _require_packages()
    name = (params.model or "").strip()
    if not name:
        raise PretrainedModelError(
            f"{_KEY} is not set: the 'pretrained' feature set needs a model directory (or a hub id with "
            "features.pretrained.allow_download: true)"
        )
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise PretrainedModelError(
                f"{_KEY}: {name} is a directory but holds no transformers model (no config.json); save one "
                "there with model.save_pretrained(dir) and feature_extractor.save_pretrained(dir)"
            )
        _check_remote_code(local / "config.json", params)
        return ModelSource(name, local, None, "path")
    if not _HUB_ID.match(name) or name.startswith((".", "~")):
        raise PretrainedModelError(
            f"{_KEY}: model directory {name} does not exist (a relative path is taken from the folder "
            "the stage runs in, the repository root under dvc)"
        )
    snap = _cached_snapshot(name)
    if snap is not None:
        log.info("pretrained model %s: using the local Hugging Face cache", name)
        _check_remote_code(snap / "config.json", params)
        return ModelSource(name, snap, name, "cache")
    also = f" (If {name!r} is meant as a local directory: it does not exist.)" if "/" in name else ""
    if not params.allow_download:
        raise PretrainedModelError(
            f"{_KEY}: {name!r} is not a local directory and not in the Hugging Face cache, and "
            f"features.pretrained.allow_download is false. {_download_help(name)}{also}"
        )
    if offline_forced():
        raise PretrainedModelError(
            f"{_KEY}: {name!r} is not cached and offline mode is on (MUSICLUST_OFFLINE=1 or "
            f"HF_HUB_OFFLINE=1), so it cannot be downloaded although allow_download is true. "
            f"{_download_help(name)}{also}"
        )
    if not hub_reachable():
        raise PretrainedModelError(
            f"{_KEY}: {name!r} is not cached and the hub "
            f"({os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}) is not reachable. "
            f"{_download_help(name)}{also}"
        )
    log.info("pretrained model %s is not cached; downloading it from the hub", name)
    return ModelSource(name, None, name, "download")


def _check_remote_code(config_path: Path, params: Any) -> None:
    """Refuse a model that ships its own code unless ``trust_remote_code`` allows it."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PretrainedModelError(f"{_KEY}: cannot read {config_path.name} of the model ({exc})") from None
    if config.get("auto_map") and not params.trust_remote_code:
        raise PretrainedModelError(
            f"{_KEY}: the model {params.model!r} ships its own Python code (config.json has auto_map; "
            "MERT does) and features.pretrained.trust_remote_code is false. Read that code, then set "
            "features.pretrained.trust_remote_code: true to run it, or choose a model transformers "
            "supports natively (wav2vec2, HuBERT, CLAP)"
        )


def fingerprint(path: Path) -> dict[str, dict[str, Any]]:
    """``{file: {"bytes": n, "sha256": hex}}`` of the model folder's weights and configs (sorted).

    Recorded in the features report so that the output changes when the weights do; relative
    names only (no absolute paths in cached outputs).
    """
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES):
        rel = f.relative_to(path).as_posix()
        if rel.startswith("."):  # .cache/ of huggingface-cli download folders
            continue
        h = hashlib.sha256()
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[rel] = {"bytes": f.stat().st_size, "sha256": h.hexdigest()}
    return out


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _load_pretrained(params: Any, source: ModelSource) -> tuple[Any, Any, Any, str, ModelSource]:
    """Load the model's config, feature extractor and weights (float32) with transformers.

    Returns ``(config, feature_extractor, model, kind, source)``; ``kind`` is ``params.kind`` with
    ``auto`` decided from the config, and ``source`` points at the cached snapshot after a download.
    """
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise _missing_packages_error(str(exc)) from None
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    location = str(source.path) if source.path is not None else source.repo_id
    local_only = source.path is not None
    common = {"local_files_only": local_only, "trust_remote_code": bool(params.trust_remote_code)}
    transformers.utils.logging.disable_progress_bar()  # weight-loading bars would flood the stage log
    try:
        if source.path is None:  # fetch the config alone first: no model code may run before this check
            from huggingface_hub import hf_hub_download

            _check_remote_code(Path(hf_hub_download(source.repo_id, "config.json")), params)
        config = AutoConfig.from_pretrained(location, **common)
        kind = params.kind
        if kind == "auto":
            kind = "clap" if config.model_type == "clap" else "hidden_states"
        if kind == "clap" and config.model_type != "clap":
            raise PretrainedModelError(
                f"features.pretrained.kind is clap but {params.model!r} is a {config.model_type!r} model; "
                "use kind: auto or hidden_states"
            )
        feature_extractor = AutoFeatureExtractor.from_pretrained(location, **common)
        if kind == "clap":
            from transformers import ClapModel

            model = ClapModel.from_pretrained(location, dtype=torch.float32, **common)
        else:
            model = AutoModel.from_pretrained(location, dtype=torch.float32, **common)
        if source.path is None:  # downloaded: fingerprint the cached snapshot it now is
            snap = _cached_snapshot(source.repo_id)
            if snap is not None:
                source = ModelSource(source.name, snap, source.repo_id, "download")
    except PretrainedModelError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PretrainedModelError(
            f"{_KEY}: cannot load {params.model!r} with transformers {transformers.__version__}: {first}"
        ) from None
    return config, feature_extractor, model, kind, source


def _check_layer(layer: Any, config: Any, params: Any) -> None:
    """Refuse an integer ``features.pretrained.layer`` outside the model's hidden states."""
    n_layers = int(getattr(config, "num_hidden_layers", 0))
    if isinstance(layer, int) and not -(n_layers + 1) <= layer <= n_layers:
        raise PretrainedModelError(
            f"features.pretrained.layer {layer} is out of range: {params.model!r} has "
            f"hidden states 0..{n_layers} (0 = input embedding)"
        )


class PretrainedEmbedder:
    """A pretrained audio model that turns clips ``(B, n_samples)`` into embeddings ``(B, dim)``.

    Build it with :func:`load_embedder`; call :meth:`embed` with clips and their sample rate.
    """

    def __init__(self, params: Any, source: ModelSource) -> None:
        self.params = params
        self.source = source
        config, self.feature_extractor, model, kind, self.source = _load_pretrained(params, source)
        self.kind = kind
        self.model = model.eval()
        self.sampling_rate = int(getattr(self.feature_extractor, "sampling_rate", 16000))
        # CLAP's extractor crops clips longer than its window at a *random* offset: crop centrally first
        self.max_samples = int(getattr(self.feature_extractor, "nb_max_samples", 0)) if kind == "clap" else 0
        self.layer = params.layer
        if kind == "hidden_states":
            _check_layer(self.layer, config, params)
        probe = self.embed(np.zeros((1, self.sampling_rate), np.float32), self.sampling_rate)
        self.dim = int(probe.shape[1])
        self.columns = column_names(self.dim)
        log.info(
            "pretrained model %s (%s, from %s): %s, %d Hz, dim %d%s",
            params.model,
            config.model_type,
            self.source.origin,
            kind,
            self.sampling_rate,
            self.dim,
            f", layer {self.layer}" if kind == "hidden_states" else "",
        )

    def describe(self) -> dict[str, Any]:
        """What the features report records: the model as configured and a fingerprint of its files."""
        return {
            "model": self.params.model,
            "kind": self.kind,
            "layer": self.layer if self.kind == "hidden_states" else None,
            "sampling_rate": self.sampling_rate,
            "dim": self.dim,
            "files": fingerprint(self.source.path) if self.source.path is not None else {},
        }

    def _prepare(self, clips: np.ndarray, sample_rate: int) -> np.ndarray:
        """Resample each clip to the model's rate (clip by clip) and centre-crop to the model window."""
        clips = np.asarray(clips, np.float32)
        if sample_rate != self.sampling_rate:
            import soxr

            clips = np.stack(
                [soxr.resample(c, sample_rate, self.sampling_rate, quality="HQ") for c in clips]
            ).astype(np.float32)
        if self.max_samples and clips.shape[1] > self.max_samples:
            start = (clips.shape[1] - self.max_samples) // 2
            clips = clips[:, start : start + self.max_samples]
        return np.ascontiguousarray(clips)

    def embed(self, clips: np.ndarray, sample_rate: int) -> np.ndarray:
        """Embeddings ``(B, dim)`` float32 of clips ``(B, n_samples)`` at ``sample_rate`` Hz (one batch)."""
        import torch

        y = self._prepare(clips, sample_rate)  # (B, n) at the model's rate
        inputs = self.feature_extractor(list(y), sampling_rate=self.sampling_rate, return_tensors="pt")
        with _torch_threads(int(self.params.threads)), torch.inference_mode():
            if self.kind == "clap":
                out = self.model.get_audio_features(**inputs)
                # transformers 5 returns an output object whose pooler_output is the embedding
                emb = out if torch.is_tensor(out) else out.pooler_output  # (B, projection_dim)
            else:
                hidden = self.model(**inputs, output_hidden_states=True).hidden_states  # L+1 x (B, T, H)
                if self.layer == "last":
                    h = hidden[-1]
                elif self.layer == "mean":
                    h = torch.stack(hidden[1:]).mean(dim=0)
                else:
                    h = hidden[int(self.layer)]
                emb = h.mean(dim=1)  # (B, H): mean over time
        return emb.to(torch.float32).numpy().astype(np.float32, copy=False)


def load_embedder(params: Any) -> PretrainedEmbedder:
    """Locate and load ``features.pretrained`` (:class:`musiclust.params.PretrainedParams`)."""
    return PretrainedEmbedder(params, resolve_model(params))
