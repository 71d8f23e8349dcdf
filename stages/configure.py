"""Stage ``configure``: resolve and check the settings of every model in ``train.models``.

Writes ``data/configs/<key>/`` per model (musiclust.contracts.configs): what its ``train@<key>``
stage trains with, and nothing else, so DVC re-runs exactly the models a change touches.
"""

from __future__ import annotations

import argparse
import logging

from musiclust.log import run_main, setup_logging
from musiclust.params import load_params
from musiclust.training.configure import configure_models

log = logging.getLogger("musiclust.stages.configure")


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Parse paths, load params, write one folder per model."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--lyrics", required=True, help="data/lyrics.parquet (copied for the models that read it)"
    )
    ap.add_argument("--out", required=True, help="output folder data/configs (rewritten whole)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    setup_logging()
    resolved = configure_models(load_params(args.params), args.lyrics, args.out)
    log.info("configure: %d model(s) -> %s", len(resolved), args.out)
    return resolved


if __name__ == "__main__":
    run_main(main)
