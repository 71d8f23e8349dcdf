"""beta-VAE: the VAE with a heavier KL term."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from musiclust.models.base import ModelConfigError
from musiclust.models.vae import VAE


class BetaVAE(VAE):
    """beta-VAE (Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained
    Variational Framework", ICLR 2017): the VAE objective with the KL term weighted by
    ``beta`` (> 1 pushes toward a factorised, more disentangled latent).

    ``beta`` comes from the top-level ``beta`` param (``dvc exp run -S beta=8``).
    """

    key = "beta_vae"
    config_keys = frozenset({"latent_dim", "hidden", "beta"})

    def __init__(
        self,
        in_dim: int,
        latent_dim: int = 8,
        hidden: list[int] | tuple[int, ...] = (128, 64),
        beta: float = 4.0,
    ) -> None:
        if beta <= 0:
            raise ModelConfigError(f"beta must be positive, got {beta}")
        super().__init__(
            in_dim,
            latent_dim,
            hidden,
            constructor={
                "in_dim": in_dim,
                "latent_dim": latent_dim,
                "hidden": list(hidden),
                "beta": float(beta),
            },
        )
        self.beta = float(beta)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> BetaVAE:
        return cls(in_dim=int(dims["audio_dim"]), **cls.check_config(cfg))
