"""Song-level (V)AE: one latent per song, encoded from the set of its clips."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from musiclust.models import schema
from musiclust.models.base import Batch, LatentModel, ModelConfigError, clamp_logvar, mlp


class SongVAE(LatentModel):
    """A song as a set of clips: permutation-invariant set encoder (Deep Sets: Zaheer et al.,
    "Deep Sets", NeurIPS 2017) under a VAE (Kingma & Welling, ICLR 2014) or, with
    ``variational: false`` (key ``song_ae``), a deterministic autoencoder.

    Every other model encodes one 3 s clip and the cluster stage averages a song's clip latents.
    Here the model sees a song's clips together:

    - each clip's standardized feature vector goes through a shared MLP ``(N, F) -> (N, H)``;
    - the clips of each song are pooled, mean and max ``(S, 2H)``, and a song MLP gives the song
      posterior ``(S, D)`` (the latent does not depend on the order of the clips);
    - the decoder reconstructs the song's per-feature clip mean and standard deviation over ALL
      its clips in the batch ``(S, 2F)``: statistics of the set, so the target is order-invariant.

    While training, the encoder sees a random subset of up to ``clips_per_song`` clips of each
    song, drawn anew at every step (an epoch visits every song once), while the target stays the
    statistics of all the song's clips: the latent must be what the whole song shares, not what
    a particular subset of clips happens to hold. Evaluation and encoding use every clip.

    Batches hold whole songs (``needs`` "song": ``batch["song"]`` is each clip's song code);
    ``encode``/``decode``/``loss`` are per song and :meth:`latent` gives each clip the latent of
    its song. The clip-level latents this model writes are therefore its song embedding repeated
    (``level: song`` in info.json): the cluster stage's song mean equals the song embedding
    exactly, and clip-level scores of this model are song-level scores, not clip-level evidence.
    """

    schema = schema.SONG_VAE

    def __init__(
        self,
        in_dim: int,
        latent_dim: int,
        hidden: list[int] | tuple[int, ...],
        clips_per_song: int,
        variational: bool,
    ) -> None:
        super().__init__(latent_dim=latent_dim)
        hidden = list(hidden)
        if not hidden or int(clips_per_song) < 0:
            raise ModelConfigError(
                f"models.{self.key}: hidden must be non-empty and clips_per_song >= 0 (0: every clip), "
                f"got hidden {hidden}, clips_per_song {clips_per_song}"
            )
        self.in_dim, self.clips_per_song, self.variational = (
            int(in_dim),
            int(clips_per_song),
            bool(variational),
        )
        self.clip_encoder = mlp([in_dim, hidden[0]], final_activation=True)
        song_dims = [2 * hidden[0], *hidden[1:]]
        self.song_encoder = mlp(song_dims, final_activation=True) if len(song_dims) > 1 else nn.Identity()
        self.heads = nn.Linear(song_dims[-1], (2 if self.variational else 1) * latent_dim)
        self.decoder = mlp([latent_dim, *reversed(hidden), 2 * in_dim])

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> SongVAE:
        return cls(in_dim=int(dims["audio_dim"]), **cls.check_config(cfg))

    # ---- songs of a batch ---------------------------------------------------------------
    @staticmethod
    def song_index(batch: Batch) -> tuple[torch.Tensor, int]:
        """Each clip's song position ``(N,)`` in the batch (songs in order of their code) and ``S``."""
        codes, inv = torch.unique(batch["song"].long(), return_inverse=True)
        return inv, len(codes)

    @classmethod
    def members(cls, batch: Batch) -> torch.Tensor:
        """One-hot song membership ``(S, N)`` float."""
        inv, n_songs = cls.song_index(batch)
        return (inv.unsqueeze(0) == torch.arange(n_songs, device=inv.device).unsqueeze(1)).float()

    def _subset(self, member: torch.Tensor) -> torch.Tensor:
        """A random subset of up to ``clips_per_song`` clips of each song ``(S, N)`` (training only)."""
        if not self.training or self.clips_per_song == 0:
            return member
        # random keys, members first: a song's clips ranked by key; keep the first clips_per_song
        keys = torch.rand(member.shape, device=member.device) + (1.0 - member) * 2.0
        rank = keys.argsort(dim=1).argsort(dim=1)
        return member * (rank < self.clips_per_song).float()

    @staticmethod
    def _pool(h: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """Mean and max of each song's clip vectors: ``h`` (N, H), ``member`` (S, N) -> (S, 2H)."""
        mean = member @ h / member.sum(dim=1, keepdim=True).clamp_min(1.0)
        masked = h.unsqueeze(0).masked_fill(member.unsqueeze(2) < 0.5, float("-inf"))  # (S, N, H)
        return torch.cat([mean, masked.amax(dim=1)], dim=1)

    # ---- the interface ---------------------------------------------------------------------
    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        member = self._subset(self.members(batch))
        # encoder: clips (N, F) -> (N, H); pooled per song (S, 2H) -> (S, H') -> mu[, logvar] (S, D)
        h = self.clip_encoder(batch["x"])
        out = self.heads(self.song_encoder(self._pool(h, member.to(h.dtype))))
        if not self.variational:
            return out, None
        mu, logvar = out.chunk(2, dim=1)
        return mu, clamp_logvar(logvar)

    def decode(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        # decoder: (S, D) -> (S, 2F): per-feature clip mean, then clip std, of each song
        return {"x": self.decoder(z)}

    def targets(self, batch: Batch) -> dict[str, torch.Tensor]:
        member = self.members(batch)
        x = batch["x"].float()
        n = member.sum(dim=1, keepdim=True)
        mean = member @ x / n
        var = member @ x.pow(2) / n - mean.pow(2)
        return {"x": torch.cat([mean, var.clamp_min(0.0).sqrt()], dim=1)}

    @torch.no_grad()
    def latent(self, batch: Batch) -> torch.Tensor:
        """Each clip's song latent ``(N, D)`` (posterior mean from all the song's clips in the batch)."""
        return self.encode(batch)[0][self.song_index(batch)[0]]

    def n_examples(self, batch: Batch) -> int:
        return int(torch.unique(batch["song"]).numel())
