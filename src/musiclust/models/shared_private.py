"""Shared + private multimodal VAE: one latent that keeps what only the lyrics know (language)
and what only the audio knows (genre) side by side."""

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
from musiclust.models.multimodal import MultimodalVAE
from musiclust.models.schema import check_shared_private


class SharedPrivateVAE(TextInputs, LatentModel):
    """Multimodal VAE with a shared latent and a private latent per modality (after Lee &
    Pavlovic, "Private-Shared Disentangled Multimodal VAE for Learning of Latent
    Representations", CVPR Workshops 2021; the shared part is the product of experts of Wu &
    Goodman, NeurIPS 2018).

    A product-of-experts posterior (:class:`~musiclust.models.multimodal.MultimodalVAE`) has
    one latent for both modalities: where the lyrics are confident (language) they outvote the
    audio, and the few dimensions left cannot hold what only the audio knows (genre). Here each
    encoder also has its own private Gaussian latent, which only its own decoder reads:

    - ``z_s`` (``latent_dim - audio_private_dim - text_private_dim`` dimensions): product of the
      audio expert, the text expert (left out for a song without lyrics) and the N(0, I) prior;
    - ``z_a`` (``audio_private_dim``) from the audio alone, ``z_t`` (``text_private_dim``) from
      the lyrics alone (the prior, i.e. zero mean, for a song without lyrics);
    - the audio decoder reads ``[z_s, z_a]``, the text decoder ``[z_s, z_t]``.

    Training uses the sub-sampled objective of the multimodal VAE on the shared part (joint,
    audio-only and text-only ELBOs) with the private latents in every term of their own
    modality. The representation is ``[mu_s, mu_a, mu_t]`` (``latent_dim`` wide, like every
    model's), each part on the prior's unit scale, so no modality swamps the other in a distance.
    """

    schema = schema.SHARED_PRIVATE

    def __init__(
        self,
        audio_dim: int,
        text_dim: int,
        latent_dim: int,
        audio_private_dim: int,
        text_private_dim: int,
        hidden: list[int] | tuple[int, ...],
        text_hidden: list[int] | tuple[int, ...],
    ) -> None:
        super().__init__(latent_dim=latent_dim)
        check_shared_private(
            self.key,
            {
                "latent_dim": latent_dim,
                "audio_private_dim": audio_private_dim,
                "text_private_dim": text_private_dim,
                "hidden": hidden,
                "text_hidden": text_hidden,
            },
        )
        shared = int(latent_dim) - int(audio_private_dim) - int(text_private_dim)
        hidden, text_hidden = list(hidden), list(text_hidden)
        self.dims = (shared, int(audio_private_dim), int(text_private_dim))
        s, pa, pt = self.dims  # the representation is [z_s, z_a, z_t], latent_dim wide
        self.text_norm = Standardizer(text_dim)
        self.audio_encoder = mlp([audio_dim, *hidden], final_activation=True)
        self.audio_heads = nn.Linear(hidden[-1], 2 * (s + pa))
        self.text_encoder = mlp([text_dim, *text_hidden], final_activation=True)
        self.text_heads = nn.Linear(text_hidden[-1], 2 * (s + pt))
        self.audio_decoder = mlp([s + pa, *reversed(hidden), audio_dim])
        self.text_decoder = mlp([s + pt, *reversed(text_hidden), text_dim])

    def posteriors(self, batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Gaussian posteriors (mu, logvar): the shared experts ``audio``/``text`` and the private
        ``z_a``/``z_t`` (the text ones as computed; masking is the caller's)."""
        s, pa, _ = self.dims
        # encoder (audio): (B, F) -> (B, H) -> shared (B, s) and private (B, pa), mu and logvar each
        h = self.audio_heads(self.audio_encoder(batch["x"]))
        mu_a, lv_a = h.chunk(2, dim=1)
        # encoder (text): (B, E) -> (B, H_t) -> shared (B, s) and private (B, pt)
        g = self.text_heads(self.text_encoder(self.masked_text(batch)))
        mu_t, lv_t = g.chunk(2, dim=1)
        lv_a, lv_t = clamp_logvar(lv_a), clamp_logvar(lv_t)
        return {
            "audio": (mu_a[:, :s], lv_a[:, :s]),
            "z_a": (mu_a[:, s:], lv_a[:, s:]),
            "text": (mu_t[:, :s], lv_t[:, :s]),
            "z_t": (mu_t[:, s:], lv_t[:, s:]),
        }

    @staticmethod
    def _prior_where_absent(
        post: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior where ``mask`` (B,) is 1, the prior N(0, I) where it is 0."""
        m = mask.float().unsqueeze(1)
        return post[0] * m, post[1] * m

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.posteriors(batch)
        ones = torch.ones(batch["x"].shape[0], device=batch["x"].device)
        mu_s, lv_s = MultimodalVAE.product_of_experts(
            [p["audio"][0], p["text"][0]], [p["audio"][1], p["text"][1]], [ones, batch["has_text"]]
        )
        mu_t, lv_t = self._prior_where_absent(p["z_t"], batch["has_text"])
        # (B, s + pa + pt)
        mu = torch.cat([mu_s, p["z_a"][0].float(), mu_t.float()], dim=1)
        return mu, torch.cat([lv_s, p["z_a"][1].float(), lv_t.float()], dim=1)

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[z_s, z_a, z_t]`` -> its three parts."""
        s, pa, _ = self.dims
        return z[:, :s], z[:, s : s + pa], z[:, s + pa :]

    def decode(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        # decoders: [z_s, z_a] -> audio (B, F); [z_s, z_t] -> text (B, E)
        zs, za, zt = self.split(z)
        return {
            "x": self.audio_decoder(torch.cat([zs, za], dim=1)),
            "text": self.text_decoder(torch.cat([zs, zt], dim=1)),
        }

    def targets(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"x": batch["x"], "text": self.masked_text(batch)}

    def _sample(self, post: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return reparameterize(*post) if self.training else post[0]

    def loss(self, batch: Batch, kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        p = self.posteriors(batch)
        mask = batch["has_text"].float()
        ones = torch.ones_like(mask)
        poe = MultimodalVAE.product_of_experts
        text_target = self.masked_text(batch)
        z_a, z_t = self._sample(p["z_a"]), self._sample(p["z_t"])
        # the private latents: each in every term of its modality, its KL counted once
        kl = gaussian_kl(*p["z_a"]) + mask * gaussian_kl(*p["z_t"])
        recon = torch.zeros_like(mask)
        # sub-sampled shared objective (as MultimodalVAE): joint, audio-only, text-only
        terms = [
            (
                poe([p["audio"][0], p["text"][0]], [p["audio"][1], p["text"][1]], [ones, mask]),
                ones,
                True,
                True,
            ),
            (poe([p["audio"][0]], [p["audio"][1]], [ones]), ones, True, False),
            (poe([p["text"][0]], [p["text"][1]], [mask]), mask, False, True),
        ]
        for post, weight, audio, text in terms:
            z_s = self._sample(post)
            if audio:
                recon = recon + weight * sse(self.audio_decoder(torch.cat([z_s, z_a], dim=1)), batch["x"])
            if text:  # masked: a song without lyrics has no text to reconstruct
                rec_t = self.text_decoder(torch.cat([z_s, z_t], dim=1))
                recon = recon + weight * mask * sse(rec_t, text_target)
            kl = kl + weight * gaussian_kl(*post)
        total = self.objective(recon, kl, kl_weight)
        return {"recon": recon.mean(), "kl": kl.mean(), "total": total.mean()}
