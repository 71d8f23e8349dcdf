"""How much of its latent a trained model uses: per-dimension KL and active units.

Posterior collapse (a KL term that switches latent dimensions off) is the usual suspect when
a VAE clusters worse than the features it compresses. Two standard measures tell whether it
happened, computed on the validation clips after training and kept in ``info.json``:

- ``kl_per_dim``: the mean over clips of KL(q(z_d|x) || N(0, 1)) for each dimension d, in
  nats (a collapsed dimension has about 0);
- ``active_units``: the number of dimensions whose posterior mean varies across clips,
  Cov_x(E_q[z_d]) > :data:`ACTIVE_THRESHOLD` (Burda, Grosse & Salakhutdinov, "Importance
  Weighted Autoencoders", ICLR 2016, section 5.2).

A deterministic encoder (the autoencoder) has no KL: its ``kl_per_dim`` is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from musiclust.models.base import LatentModel
from musiclust.training.loop import EVAL_BATCH
from musiclust.training.streaming import batches, eval_order

#: variance of a dimension's posterior mean across clips above which it counts as active
ACTIVE_THRESHOLD = 0.01


@torch.no_grad()
def latent_usage(
    model: LatentModel, arrays: Mapping[str, Any], device: torch.device, workers: int = 0
) -> dict[str, Any]:
    """``active_units``, ``latent_var`` (variance of each posterior-mean dimension) and
    ``kl_per_dim`` over the clips in ``arrays`` (keyed like a batch), rounded to 6 digits; for a
    song-level model over its songs (``songs`` says how many)."""
    model.eval()
    n = len(arrays["x"])
    if n == 0:
        return {"active_units": None, "latent_var": None, "kl_per_dim": None, "clips": 0}
    mus, kls = [], []
    for batch in batches(arrays, eval_order(arrays, EVAL_BATCH), device, workers):
        mu, logvar = model.encode(batch)
        mu = mu.float()
        mus.append(mu.cpu().numpy())
        if logvar is not None:
            lv = logvar.float()
            kls.append((0.5 * (mu.pow(2) + lv.exp() - 1.0 - lv)).sum(dim=0).cpu().numpy())
    mu_all = np.concatenate(mus).astype(np.float64)
    var = mu_all.var(axis=0)
    kl = (np.sum(kls, axis=0) / len(mu_all)) if kls else None
    return {
        "active_units": int((var > ACTIVE_THRESHOLD).sum()),
        "latent_var": [round(float(v), 6) for v in var],
        "kl_per_dim": None if kl is None else [round(float(v), 6) for v in kl],
        "clips": int(n),
        **({"songs": len(mu_all)} if "song" in arrays else {}),  # a song-level model's units
    }
