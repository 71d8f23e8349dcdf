"""2-D convolutional VAE on log-mel patches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from musiclust.models import schema
from musiclust.models.base import (
    Batch,
    LatentModel,
    ModelConfigError,
    Standardizer,
    clamp_logvar,
    gaussian_kl,
    reparameterize,
    row_chunks,
    sse,
)


class ConvVAE(LatentModel):
    """Convolutional VAE (the VAE of Kingma & Welling 2014 with the strided-conv encoder /
    transposed-conv decoder of DCGAN, Radford et al. 2016) on a clip's log-mel patch.

    The raw patch ``(B, n_mels, frames)`` (dB) is standardized per mel band with train-split
    statistics held as buffers, then average-pooled by ``pool`` to keep it small enough to
    train on two CPU cores. With ``target: patch`` the decoder reconstructs that pooled,
    standardized patch. With ``target: sorted`` it reconstructs each band's values sorted over
    time (the band's quantile function: its level, spread and dynamics, but not *when* anything
    happens in the window). A 3-second window starts at an arbitrary point of the song, so
    where an onset falls inside it says nothing about the song; reconstructing the patch as it
    is spends the latent on exactly that (measured on real songs: genre NMI of the song means
    fell as the patch reconstruction improved), the sorted target makes the code shift-invariant
    while the encoder still sees the whole patch.
    """

    schema = schema.CONV_VAE
    TARGETS = ("patch", "sorted")

    def __init__(
        self,
        n_mels: int,
        frames: int,
        latent_dim: int,
        channels: list[int] | tuple[int, ...],
        pool: list[int] | tuple[int, ...],
        target: str,
    ) -> None:
        super().__init__(latent_dim=latent_dim)
        channels, pool = list(channels), list(pool)
        if target not in self.TARGETS:
            raise ModelConfigError(f"models.conv_vae.target must be one of {self.TARGETS}, got {target!r}")
        self.target = target
        if len(pool) != 2 or min(pool) < 1 or not channels:
            raise ModelConfigError("models.conv_vae: pool must be two positive ints and channels non-empty")
        h, w = n_mels // pool[0], frames // pool[1]
        step = 2 ** len(channels)
        if h % step or w % step or h < step or w < step:
            raise ModelConfigError(
                f"models.conv_vae: pooled patch {h}x{w} (n_mels {n_mels} / {pool[0]}, frames {frames} / {pool[1]}) "
                f"must be divisible by 2**len(channels) = {step}; change pool or channels"
            )
        self.norm = Standardizer(n_mels)
        self.pool = nn.AvgPool2d(kernel_size=tuple(pool))
        self._bottom = (channels[-1], h // step, w // step)
        flat = channels[-1] * (h // step) * (w // step)
        enc: list[nn.Module] = []
        c_in = 1
        for c in channels:  # each block halves both axes
            enc += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.LeakyReLU(0.2)]
            c_in = c
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self.mu_head = nn.Linear(flat, latent_dim)
        self.logvar_head = nn.Linear(flat, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, flat)
        dec: list[nn.Module] = []
        rev = list(reversed(channels))
        for c_from, c_to in zip(rev[:-1], rev[1:]):  # each block doubles both axes
            dec += [
                nn.ConvTranspose2d(c_from, c_to, 4, stride=2, padding=1),
                nn.BatchNorm2d(c_to),
                nn.LeakyReLU(0.2),
            ]
        dec.append(nn.ConvTranspose2d(rev[-1], 1, 4, stride=2, padding=1))
        self.decoder = nn.Sequential(*dec)
        # channels-last (NHWC) weights: oneDNN's CPU convolutions work in that layout, so the
        # activations are no longer reordered from and to NCHW around every conv (about 1.2x per
        # training step on CPU); a conv with a channels-last weight returns channels-last output
        self.encoder.to(memory_format=torch.channels_last)
        self.decoder.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> ConvVAE:
        n_mels, frames = dims["logmel_shape"]
        return cls(n_mels=int(n_mels), frames=int(frames), **cls.check_config(cfg))

    def fit_input_stats(self, train: Mapping[str, Any]) -> dict[str, Any]:
        # per-mel-band mean/std over every training frame of (N, M, T), in two passes over
        # chunks of clips (float64 sums) so that memory does not grow with N
        x = train["x"]
        total, count = np.zeros(self.norm.mean.numel()), 0
        for chunk in row_chunks(x, 1024):
            total += chunk.astype(np.float64).sum(axis=(0, 2))
            count += chunk.shape[0] * chunk.shape[2]
        if count:
            mean = total / count
            sq = np.zeros_like(mean)
            for chunk in row_chunks(x, 1024):
                sq += ((chunk.astype(np.float64) - mean[None, :, None]) ** 2).sum(axis=(0, 2))
            self.norm.set_stats(mean, np.sqrt(sq / count))
        return {"logmel_norm": "per-mel-band mean/std over train clips (buffers norm.mean, norm.std)"}

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        # (B, M, T) dB -> standardized per band -> (B, 1, M/p0, T/p1). The statistics broadcast
        # over time as (M, 1): the same elementwise values as standardizing the transposed patch,
        # but the result stays contiguous, which the pooling reads much faster.
        x = (x.float() - self.norm.mean[:, None]) / self.norm.std[:, None]
        return self.pool(x.unsqueeze(1))

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 1, h, w): the prepared patch itself, or each band sorted along time
        if self.target == "patch":
            return x
        if x.device.type == "cpu" and not x.requires_grad:
            # numpy sorts 32-value rows several times faster than torch.sort on CPU; the sorted
            # values are the same numbers (the target is a constant: no gradient flows into it)
            return torch.from_numpy(np.sort(x.detach().numpy(), axis=-1))
        return torch.sort(x, dim=-1).values

    def targets(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"x": self._target(self._prepare(batch["x"]))}

    def loss(self, batch: Batch, kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """The base objective, with the standardized, pooled patch computed once (the encoder
        input is also the reconstruction target) instead of once for each."""
        x = self._prepare(batch["x"])
        h = self.encoder(x)
        mu, logvar = self.mu_head(h), clamp_logvar(self.logvar_head(h))
        z = reparameterize(mu, logvar) if self.training else mu
        recon = sse(self.decode(z, batch)["x"], self._target(x))
        kl = gaussian_kl(mu, logvar)
        total = self.objective(recon, kl, kl_weight)
        return {"recon": recon.mean(), "kl": kl.mean(), "total": total.mean()}

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        # encoder: (B, M, T) -> (B, 1, h, w) -> (B, C*h'*w') -> mu, logvar (B, D)
        h = self.encoder(self._prepare(batch["x"]))
        return self.mu_head(h), clamp_logvar(self.logvar_head(h))

    def decode(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        # decoder: (B, D) -> (B, C, h', w') -> (B, 1, h, w)
        return {"x": self.decoder(self.fc_dec(z).view(-1, *self._bottom))}
