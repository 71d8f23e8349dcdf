"""The ``configure`` stage's library side: every selected model's resolved settings and inputs.

For each key of ``train.models`` it writes ``data/configs/<key>/`` (:mod:`musiclust.contracts.configs`):
the settings the model is built with (validated here by its schema, so a bad setting stops the run
before any model trains) and, for a model that reads lyrics, a copy of the lyrics table. The
``train@<key>`` stages read only their own folder, which is what lets DVC re-run exactly the
models a change touches. Every folder also records the digest of the code the train stages run
(:data:`TRAIN_CODE`), their code deps listed once in dvc.yaml.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from musiclust.contracts import configs as contract
from musiclust.fileio import source_digest
from musiclust.models.registry import model_spec, resolve_settings
from musiclust.params import Params

log = logging.getLogger(__name__)

#: The code a ``train@<key>`` stage runs besides stages/train.py, relative to the ``musiclust``
#: package: configure's code deps in dvc.yaml include it, and its digest goes into every
#: ``data/configs/<key>/code.txt`` (tests/test_contract.py checks it is what stages/train.py imports).
TRAIN_CODE = (
    "training",
    "models",
    "contracts/configs.py",
    "contracts/segments.py",
    "contracts/shards.py",
    "contracts/features.py",
    "contracts/lyrics.py",
    "contracts/models.py",
    "params.py",
    "fileio.py",
    "log.py",
)


def train_code_digest() -> str:
    """SHA-256 (hex) of the :data:`TRAIN_CODE` source files."""
    return source_digest(TRAIN_CODE).hexdigest()


def configure_models(params: Params, lyrics_path: str | Path, out_dir: str | Path) -> dict[str, dict]:
    """Write ``out_dir/<key>/`` for every key of ``train.models`` (``out_dir`` is rewritten whole).

    Returns key -> resolved settings. Raises :class:`~musiclust.models.ModelConfigError` (one
    line naming ``models.<key>.<setting>``) for a setting the model's schema refuses.
    """
    resolved = resolve_settings(params)
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    code = train_code_digest()
    for key, settings in resolved.items():
        reads_lyrics = "text" in model_spec(key).needs
        contract.write(
            out_dir, key, settings, params.train, params.seeds, lyrics_path if reads_lyrics else None, code
        )
        log.info("%s: %s%s", key, settings, " + lyrics" if reads_lyrics else "")
    return resolved
