"""Logging set-up shared by stage scripts and the command-line tool."""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from musiclust.fileio import UserInputError


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


def run_main(main: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> Any:
    """Run a stage's ``main``; bad user input ends it with one ``error: ...`` line and exit code 2.

    Anything raising :class:`~musiclust.fileio.UserInputError` (``ParamsError``,
    ``InputFileError``, ``ManifestError``) names the key or file and the reason, so a
    traceback would only hide it. Other exceptions are bugs and keep their traceback.

    Run on the process's own command line (``argv`` None: a stage script about to exit), the
    heap is frozen at the end (:func:`gc.freeze`): the interpreter then skips a last cyclic
    collection over every object torch, pandas and scikit-learn created, about 0.3 s of each
    stage process's exit. Callers passing ``argv`` (tests, in-process) keep a normal heap.
    """
    try:
        return main(argv)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if argv is None:
            gc.freeze()
