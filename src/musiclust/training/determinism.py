"""Same code, params and inputs give byte-identical training outputs on one machine.

:func:`deterministic` fixes what torch would otherwise choose per run (thread count,
non-deterministic kernels, cuDNN autotuning) for the duration of a training run and puts the
previous settings back afterwards, so a library caller (a test, a notebook) is left as it was.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.utils.deterministic


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) for one training run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


@contextmanager
def deterministic(threads: int, device: torch.device) -> Iterator[None]:
    """Run the body with ``threads`` CPU threads and deterministic kernels.

    CPU: ``torch.use_deterministic_algorithms(True, warn_only=True)`` (an op without a
    deterministic implementation warns instead of failing: the run still completes), without
    its NaN-filling of every uninitialized tensor (``fill_uninitialized_memory``: a debugging aid
    that catches reads of memory never written, which no result depends on; it cost about a
    fifth of a conv_vae training step on CPU, and the byte-identity tests still hold). CUDA:
    also cuDNN ``deterministic`` on and ``benchmark`` off, and the cuBLAS workspace setting that
    deterministic cuBLAS needs (only effective if CUDA was not initialised before).
    """
    if threads < 1:
        raise ValueError(f"train.threads must be >= 1, got {threads}")
    saved = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[3], saved[4]
        torch.utils.deterministic.fill_uninitialized_memory = saved[5]
