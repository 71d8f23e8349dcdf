"""Logging set-up shared by stage scripts and the command-line tool."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | int | None = None) -> None:
    """Configure root logging once: ``LEVEL name: message`` on stderr.

    The level comes from the argument, else ``MUSICLUST_LOG`` (default INFO).
    """
    level = level or os.environ.get("MUSICLUST_LOG", "INFO")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    # third-party chatter that hides our own progress
    for noisy in ("numba", "matplotlib", "urllib3", "filelock", "huggingface_hub", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
