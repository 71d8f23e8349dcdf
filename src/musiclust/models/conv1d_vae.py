"""1-D convolutional VAE over MFCC sequences (time is the convolution axis)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from musiclust.models import schema
from musiclust.models.base import Batch, LatentModel, ModelConfigError, Standardizer, clamp_logvar


class SequenceInputs:
    """Mixin for models that read an MFCC sequence ``batch["x"]`` ``(B, n_mfcc, frames)``.

    The sequence is standardized per coefficient with train-split statistics (buffers
    ``norm.*``, so a checkpoint needs nothing else) and average-pooled over time by ``pool``.
    The class must create ``self.norm = Standardizer(n_mfcc)`` and ``self.time_pool``; its
    schema's ``x_kind`` is "mfcc_seq".
    """

    norm: Standardizer
    time_pool: nn.Module

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # LatentModel's: sets x_kind from the schema
        if getattr(cls, "x_kind", None) != "mfcc_seq":
            raise TypeError(
                f"{cls.__name__} reads MFCC sequences (SequenceInputs), but its schema's x_kind is not 'mfcc_seq'"
            )

    def fit_sequence_stats(self, train: Mapping[str, np.ndarray]) -> dict[str, Any]:
        # per-coefficient mean/std over every training frame: (N, C, T) -> (N*T, C)
        x = np.asarray(train["x"], dtype=np.float32)
        self.norm.fit(x.transpose(0, 2, 1).reshape(-1, x.shape[1]))
        return {"mfcc_seq_norm": "per-coefficient mean/std over train frames (buffers norm.mean, norm.std)"}

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` raw MFCCs -> standardized per coefficient, pooled over time ``(B, C, T/pool)``."""
        x = (x.float().transpose(1, 2) - self.norm.mean) / self.norm.std
        return self.time_pool(x.transpose(1, 2))


def check_sequence_shape(key: str, n_mfcc: int, frames: int, channels: list[int], pool: int) -> int:
    """Frames after pooling and ``len(channels)`` stride-2 blocks; a clear error if they do not divide."""
    if not channels or min(channels) < 1 or pool < 1:
        raise ModelConfigError(f"models.{key}: channels must be non-empty positive ints and pool >= 1")
    t = frames // pool
    step = 2 ** len(channels)
    if n_mfcc < 1 or t % step or t < step:
        raise ModelConfigError(
            f"models.{key}: {frames} frames / pool {pool} = {t} must be divisible by "
            f"2**len(channels) = {step}; change pool, channels or features.logmel_frames"
        )
    return t // step


def conv1d_encoder(in_ch: int, channels: list[int], kernel: int) -> nn.Sequential:
    """Stride-2 ``Conv1d`` blocks (BatchNorm, LeakyReLU); each halves the time axis."""
    layers: list[nn.Module] = []
    for c in channels:
        layers += [
            nn.Conv1d(in_ch, c, kernel, stride=2, padding=kernel // 2),
            nn.BatchNorm1d(c),
            nn.LeakyReLU(0.2),
        ]
        in_ch = c
    return nn.Sequential(*layers)


def conv1d_decoder(channels: list[int], out_ch: int) -> nn.Sequential:
    """Mirror of :func:`conv1d_encoder`: stride-2 ``ConvTranspose1d`` blocks, each doubling time."""
    rev = list(reversed(channels))
    layers: list[nn.Module] = []
    for c_from, c_to in zip(rev[:-1], rev[1:]):
        layers += [
            nn.ConvTranspose1d(c_from, c_to, 4, stride=2, padding=1),
            nn.BatchNorm1d(c_to),
            nn.LeakyReLU(0.2),
        ]
    layers.append(nn.ConvTranspose1d(rev[-1], out_ch, 4, stride=2, padding=1))
    return nn.Sequential(*layers)


class Conv1dVAE(SequenceInputs, LatentModel):
    """1-D convolutional VAE (the objective of Kingma & Welling 2014) over a clip's MFCC sequence,
    with time as the convolution axis and the coefficients as channels, as in the 1-D temporal
    convolutions over spectrogram frames of Dieleman & Schrauwen ("End-to-end learning for music
    audio", ICASSP 2014).

    The sequence ``(B, n_mfcc, frames)`` is standardized per coefficient (train statistics held
    as buffers) and optionally average-pooled over time by ``pool``; ``len(channels)`` stride-2
    convolutions shrink time by ``2**len(channels)``; the flattened feature map gives the
    Gaussian posterior. The decoder mirrors the encoder with transposed convolutions and
    reconstructs the standardized (pooled) sequence.
    """

    schema = schema.CONV1D_VAE

    def __init__(
        self,
        n_mfcc: int,
        frames: int,
        latent_dim: int,
        channels: list[int] | tuple[int, ...],
        kernel: int,
        pool: int,
    ) -> None:
        super().__init__(latent_dim=latent_dim)
        channels = list(channels)
        if kernel < 1 or kernel % 2 == 0:
            raise ModelConfigError(f"models.{self.key}.kernel must be a positive odd int (got {kernel})")
        t_bottom = check_sequence_shape(self.key, n_mfcc, frames, channels, pool)
        self.norm = Standardizer(n_mfcc)
        self.time_pool = nn.AvgPool1d(pool) if pool > 1 else nn.Identity()
        self._bottom = (channels[-1], t_bottom)
        flat = channels[-1] * t_bottom
        self.encoder = nn.Sequential(conv1d_encoder(n_mfcc, channels, kernel), nn.Flatten())
        self.mu_head = nn.Linear(flat, latent_dim)
        self.logvar_head = nn.Linear(flat, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, flat)
        self.decoder = conv1d_decoder(channels, n_mfcc)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> Conv1dVAE:
        n_mfcc, frames = dims["mfcc_seq_shape"]
        return cls(n_mfcc=int(n_mfcc), frames=int(frames), **cls.check_config(cfg))

    def fit_input_stats(self, train: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return self.fit_sequence_stats(train)

    def targets(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"x": self.prepare(batch["x"])}

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        # encoder: (B, C, T) -> (B, C, T/pool) -> (B, ch, T') -> (B, ch*T') -> mu, logvar (B, D)
        h = self.encoder(self.prepare(batch["x"]))
        return self.mu_head(h), clamp_logvar(self.logvar_head(h))

    def decode(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        # decoder: (B, D) -> (B, ch, T') -> (B, C, T/pool)
        return {"x": self.decoder(self.fc_dec(z).view(-1, *self._bottom))}
