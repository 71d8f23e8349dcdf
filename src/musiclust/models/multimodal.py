"""Multimodal VAE: audio and lyrics experts fused by a product of experts."""

from __future__ import annotations

import torch
from torch import nn

from musiclust.models import schema
from musiclust.models.base import (
    Batch,
    LatentModel,
    Standardizer,
    TextInputs,
    clamp_logvar,
    gaussian_kl,
    mlp,
    reparameterize,
    sse,
)


class MultimodalVAE(TextInputs, LatentModel):
    """Multimodal VAE with a product-of-experts posterior (Wu & Goodman, "Multimodal Generative
    Models for Scalable Weakly-Supervised Learning", NeurIPS 2018).

    An audio encoder q(z|audio) and a lyrics encoder q(z|text) are Gaussian experts; the joint
    posterior is their product with the prior expert N(0, I). A song without lyrics
    (``has_text`` = 0) simply leaves its text expert out, so it is encoded from audio alone.
    Two decoders reconstruct both modalities; the text reconstruction is masked by ``has_text``.
    Training uses the paper's sub-sampled objective: the joint ELBO (both modalities) plus the
    audio-only ELBO (audio reconstruction) plus the text-only ELBO (text reconstruction, songs
    with lyrics only), so each expert also works on its own.
    """

    schema = schema.MULTIMODAL

    def __init__(
        self,
        audio_dim: int,
        text_dim: int,
        latent_dim: int,
        hidden: list[int] | tuple[int, ...],
        text_hidden: list[int] | tuple[int, ...],
    ) -> None:
        super().__init__(latent_dim=latent_dim)
        hidden, text_hidden = list(hidden), list(text_hidden)
        self.text_norm = Standardizer(text_dim)
        self.audio_encoder = mlp([audio_dim, *hidden], final_activation=True)
        self.audio_heads = nn.Linear(hidden[-1], 2 * latent_dim)
        self.text_encoder = mlp([text_dim, *text_hidden], final_activation=True)
        self.text_heads = nn.Linear(text_hidden[-1], 2 * latent_dim)
        self.audio_decoder = mlp([latent_dim, *reversed(hidden), audio_dim])
        self.text_decoder = mlp([latent_dim, *reversed(text_hidden), text_dim])

    def experts(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Audio and text experts: ``(mu_a, logvar_a, mu_t, logvar_t)``, each ``(B, D)``."""
        # encoder (audio): (B, F) -> (B, H) -> (B, 2D)
        mu_a, lv_a = self.audio_heads(self.audio_encoder(batch["x"])).chunk(2, dim=1)
        # encoder (text): (B, E) -> (B, H_t) -> (B, 2D)
        mu_t, lv_t = self.text_heads(self.text_encoder(self.masked_text(batch))).chunk(2, dim=1)
        return mu_a, clamp_logvar(lv_a), mu_t, clamp_logvar(lv_t)

    @staticmethod
    def product_of_experts(
        mus: list[torch.Tensor], logvars: list[torch.Tensor], masks: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Product of Gaussian experts and the N(0, I) prior; ``masks`` (B,) drop absent experts."""
        precision = torch.ones_like(mus[0], dtype=torch.float32)  # the prior expert
        weighted = torch.zeros_like(precision)
        for mu, lv, m in zip(mus, logvars, masks):
            p = torch.exp(-lv.float()) * m.float().unsqueeze(1)
            precision = precision + p
            weighted = weighted + mu.float() * p
        return weighted / precision, -torch.log(precision)

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        mu_a, lv_a, mu_t, lv_t = self.experts(batch)
        ones = torch.ones(mu_a.shape[0], device=mu_a.device)
        return self.product_of_experts([mu_a, mu_t], [lv_a, lv_t], [ones, batch["has_text"]])

    def decode(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        # decoders: (B, D) -> audio (B, F) and text (B, E)
        return {"x": self.audio_decoder(z), "text": self.text_decoder(z)}

    def targets(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"x": batch["x"], "text": self.masked_text(batch)}

    def _elbo_parts(
        self, mu: torch.Tensor, lv: torch.Tensor, batch: Batch, audio: bool, text: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example reconstruction of the chosen modalities and KL of one posterior."""
        z = reparameterize(mu, lv) if self.training else mu
        rec = self.decode(z, batch)
        recon = torch.zeros(mu.shape[0], device=mu.device)
        if audio:
            recon = recon + sse(rec["x"], batch["x"])
        if text:  # masked: a song without lyrics has no text to reconstruct
            recon = recon + batch["has_text"].float() * sse(rec["text"], self.masked_text(batch))
        return recon, gaussian_kl(mu, lv)

    def loss(self, batch: Batch, kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        mu_a, lv_a, mu_t, lv_t = self.experts(batch)
        mask = batch["has_text"].float()
        ones = torch.ones_like(mask)
        # sub-sampled objective (Wu & Goodman 2018): the joint ELBO reconstructs both modalities,
        # each unimodal ELBO only its own; the text-only term counts only for songs with lyrics
        terms = [
            (self.product_of_experts([mu_a, mu_t], [lv_a, lv_t], [ones, mask]), ones, True, True),
            (self.product_of_experts([mu_a], [lv_a], [ones]), ones, True, False),
            (self.product_of_experts([mu_t], [lv_t], [mask]), mask, False, True),
        ]
        recon = torch.zeros_like(mask)
        kl = torch.zeros_like(mask)
        for (mu, lv), weight, audio, text in terms:
            r, k = self._elbo_parts(mu, lv, batch, audio, text)
            recon = recon + weight * r
            kl = kl + weight * k
        total = self.objective(recon, kl, kl_weight)  # beta is 1: recon + kl_weight * kl
        return {"recon": recon.mean(), "kl": kl.mean(), "total": total.mean()}
