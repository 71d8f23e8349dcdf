"""VaDE: a VAE whose prior is a Gaussian mixture, so it clusters as it learns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from musiclust.models import schema
from musiclust.models.base import Batch, ModelConfigError, sse
from musiclust.models.vae import VAE


class VaDE(VAE):
    """Variational Deep Embedding (Jiang, Zheng, Tan, Tang & Zhou, "Variational Deep Embedding:
    An Unsupervised and Generative Approach to Clustering", IJCAI 2017).

    Generative story: c ~ Cat(pi), z ~ N(mu_c, diag sigma_c^2), x ~ N(f(z), I). Training
    follows the paper: (1) pretrain the encoder mean and decoder as a plain autoencoder
    (:attr:`pretraining` True: loss = reconstruction of the mean code), (2) fit a diagonal GMM
    to the pretrained codes and copy it into the prior (:meth:`init_prior`), (3) maximise the
    VaDE ELBO jointly. The responsibilities q(c|x) ~= p(c|z) give its own cluster assignments.
    """

    schema = schema.VADE

    def __init__(
        self,
        in_dim: int,
        latent_dim: int,
        hidden: list[int] | tuple[int, ...],
        n_components: int,
        pretrain_steps: int,
    ) -> None:
        if n_components < 1:
            raise ModelConfigError("models.vade.n_components must be >= 1")
        super().__init__(
            in_dim,
            latent_dim,
            hidden,
        )
        self.n_components = int(n_components)
        self.pretrain_steps = int(pretrain_steps)
        # mixture prior: logits of pi, component means and log-variances (K, D)
        self.pi_logits = nn.Parameter(torch.zeros(n_components))
        self.mu_c = nn.Parameter(torch.randn(n_components, latent_dim))
        self.logvar_c = nn.Parameter(torch.zeros(n_components, latent_dim))
        # ``pretraining`` (base attribute) is True during stage 1: the prior is not used then

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> VaDE:
        return cls(in_dim=int(dims["audio_dim"]), **cls.check_config(cfg))

    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        """log p(c) + log N(z | mu_c, sigma_c^2) for every component: ``(B, K)``."""
        z = z.float().unsqueeze(1)  # (B, 1, D)
        logvar_c = self.logvar_c.float()
        log_pdf = -0.5 * (
            math.log(2 * math.pi) + logvar_c + (z - self.mu_c.float()).pow(2) / logvar_c.exp()
        ).sum(dim=2)
        return torch.log_softmax(self.pi_logits.float(), dim=0) + log_pdf

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """gamma = p(c | z) ``(B, K)``; each row sums to one."""
        return torch.softmax(self.log_joint(z), dim=1)

    @torch.no_grad()
    def assign(self, batch: Batch) -> torch.Tensor:
        """VaDE's own cluster of each example: argmax of the responsibilities at the posterior mean."""
        return self.responsibilities(self.latent(batch)).argmax(dim=1)

    def after_pretraining(self, codes: np.ndarray, seed: int) -> dict[str, Any]:
        """Stage 2 of the paper: the GMM initialisation of the prior (:meth:`init_prior`)."""
        return self.init_prior(codes, seed)

    def loss(self, batch: Batch, kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(batch)
        x = self.inputs(batch)
        if self.pretraining:
            # stage 1: deterministic autoencoder on the mean code
            recon = sse(self.decoder(mu), x)
            zero = torch.zeros((), device=recon.device)
            return {"recon": recon.mean(), "kl": zero, "total": recon.mean()}
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        recon = sse(self.decoder(z), x)
        mu, logvar = mu.float(), logvar.float()
        gamma = self.responsibilities(z)  # (B, K), treated as q(c|x) as in the paper
        logvar_c, mu_c = self.logvar_c.float(), self.mu_c.float()
        # E_q[log q(z|x) - log p(z|c)] summed over latent dims, weighted by gamma
        cross = 0.5 * (
            gamma
            * (
                logvar_c.unsqueeze(0)
                + logvar.exp().unsqueeze(1) / logvar_c.exp().unsqueeze(0)
                + (mu.unsqueeze(1) - mu_c.unsqueeze(0)).pow(2) / logvar_c.exp().unsqueeze(0)
            ).sum(dim=2)
        ).sum(dim=1)
        log_pi = torch.log_softmax(self.pi_logits.float(), dim=0)
        cat_kl = (gamma * (torch.log(gamma + 1e-10) - log_pi.unsqueeze(0))).sum(dim=1)
        entropy = 0.5 * (1.0 + logvar).sum(dim=1)
        kl = cross + cat_kl - entropy
        total = self.objective(recon, kl, kl_weight)  # beta is 1: recon + kl_weight * kl
        return {"recon": recon.mean(), "kl": kl.mean(), "total": total.mean()}

    @torch.no_grad()
    def init_prior(self, codes: np.ndarray, seed: int) -> dict[str, float]:
        """Stage 2: fit a diagonal GMM to pretrained codes ``(N, D)`` and copy it into the prior."""
        from sklearn.mixture import GaussianMixture

        if len(codes) < self.n_components:
            raise ValueError(
                f"vade: {len(codes)} training clips cannot initialise {self.n_components} mixture components; "
                "lower models.vade.n_components"
            )
        gmm = GaussianMixture(
            n_components=self.n_components,
            covariance_type="diag",
            n_init=3,
            reg_covar=1e-4,
            random_state=seed,
        ).fit(np.asarray(codes, dtype=np.float64))
        self.pi_logits.copy_(torch.as_tensor(np.log(gmm.weights_ + 1e-8), dtype=torch.float32))
        self.mu_c.copy_(torch.as_tensor(gmm.means_, dtype=torch.float32))
        self.logvar_c.copy_(torch.as_tensor(np.log(gmm.covariances_), dtype=torch.float32))
        return {"gmm_converged": bool(gmm.converged_), "gmm_lower_bound": float(gmm.lower_bound_)}
