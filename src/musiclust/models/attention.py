"""Multimodal VAE fusing audio and lyrics by cross-modal attention (audio attends to lyrics)."""

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
    Standardizer,
    TextInputs,
    clamp_logvar,
    gaussian_kl,
    mlp,
    sse,
)
from musiclust.models.conv1d_vae import SequenceInputs, check_sequence_shape, conv1d_decoder, conv1d_encoder
from musiclust.models.schema import check_attention


class AttentionMultimodalVAE(SequenceInputs, TextInputs, LatentModel):
    """Multimodal VAE whose audio tokens attend to lyrics tokens by multi-head cross-attention,
    the cross-modal attention of Tsai et al. ("Multimodal Transformer for Unaligned Multimodal
    Language Sequences", ACL 2019; scaled dot-product multi-head attention of Vaswani et al. 2017),
    with an optional gated fusion, the Gated Multimodal Unit of Arevalo et al. ("Gated Multimodal
    Units for Information Fusion", ICLR workshop 2017).

    Audio tokens: the MFCC sequence ``(B, n_mfcc, frames)`` (standardized per coefficient) goes
    through the stride-2 ``Conv1d`` blocks of :class:`~musiclust.models.conv1d_vae.Conv1dVAE`;
    each of the ``T'`` output steps is a token of width ``channels[-1]``.

    Lyrics tokens: ``lyrics.parquet`` holds ONE pooled embedding per song, not a token sequence.
    So the lyrics tokens here are ``text_tokens`` learned linear projections of the song's
    (standardized) embedding, each with its own position vector: the attention chooses among
    learned views of one vector, not among words or lines of the lyrics. A learned *null* token
    is always present and never masked; the lyrics tokens of a song without lyrics
    (``has_text`` = 0) are masked out, so its audio tokens attend to the null token alone (no
    all-masked softmax, no NaN) and the song is encoded from audio.

    Fusion per audio token ``a`` with its attended lyrics context ``c``: ``residual`` is
    ``LayerNorm(a + c)``; ``gated`` is the GMU ``g * tanh(W_a a) + (1 - g) * tanh(W_c c)`` with
    ``g = sigmoid(W_g [a; c])``, then LayerNorm. The fused tokens are flattened into the Gaussian
    posterior. Decoders reconstruct the standardized sequence (as Conv1dVAE) and the lyrics
    embedding (an MLP, masked by ``has_text`` like :class:`~musiclust.models.multimodal.MultimodalVAE`).
    """

    schema = schema.ATTENTION_MM

    def __init__(
        self,
        n_mfcc: int,
        frames: int,
        text_dim: int,
        latent_dim: int,
        channels: list[int] | tuple[int, ...],
        kernel: int,
        pool: int,
        heads: int,
        text_tokens: int,
        text_hidden: list[int] | tuple[int, ...],
        fusion: str,
    ) -> None:
        super().__init__(latent_dim=latent_dim)
        channels, text_hidden = list(channels), list(text_hidden)
        t_bottom = check_sequence_shape(self.key, n_mfcc, frames, channels, pool)
        d = channels[-1]
        check_attention(self.key, fusion, heads, d, text_tokens, kernel)
        self.fusion, self.text_tokens, self.d = fusion, int(text_tokens), d
        self._bottom = (d, t_bottom)
        # inputs
        self.norm = Standardizer(n_mfcc)
        self.text_norm = Standardizer(text_dim)
        self.time_pool = nn.AvgPool1d(pool) if pool > 1 else nn.Identity()
        # audio tokens
        self.audio_encoder = conv1d_encoder(n_mfcc, channels, kernel)
        self.audio_pos = nn.Parameter(torch.randn(t_bottom, d) * 0.02)
        # lyrics tokens: learned projections of the one embedding, plus the null token
        self.text_proj = nn.Linear(text_dim, text_tokens * d)
        self.text_pos = nn.Parameter(torch.randn(text_tokens, d) * 0.02)
        self.null_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        # cross-attention and fusion
        self.cross_attention = nn.MultiheadAttention(d, heads, batch_first=True)
        if fusion == "gated":
            self.gate = nn.Linear(2 * d, d)
            self.gate_audio = nn.Linear(d, d)
            self.gate_text = nn.Linear(d, d)
        self.fused_norm = nn.LayerNorm(d)
        # posterior
        self.posterior = nn.Linear(t_bottom * d, 2 * latent_dim)
        # decoders
        self.fc_dec = nn.Linear(latent_dim, t_bottom * d)
        self.audio_decoder = conv1d_decoder(channels, n_mfcc)
        self.text_decoder = mlp([latent_dim, *text_hidden, text_dim])

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> AttentionMultimodalVAE:
        n_mfcc, frames = dims["mfcc_seq_shape"]
        return cls(
            n_mfcc=int(n_mfcc), frames=int(frames), text_dim=int(dims["text_dim"]), **cls.check_config(cfg)
        )

    def fit_input_stats(self, train: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {**self.fit_sequence_stats(train), **TextInputs.fit_input_stats(self, train)}

    def lyrics_tokens(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys/values ``(B, 1 + text_tokens, d)`` (null token first) and the padding mask (True = ignore)."""
        text = self.masked_text(batch)
        b = text.shape[0]
        tokens = self.text_proj(text).view(b, self.text_tokens, self.d) + self.text_pos
        tokens = torch.cat([self.null_token.expand(b, 1, self.d), tokens], dim=1)
        no_text = batch["has_text"].float() < 0.5
        mask = torch.cat(
            [torch.zeros_like(no_text).unsqueeze(1), no_text.unsqueeze(1).expand(b, self.text_tokens)], 1
        )
        return tokens, mask

    def fused_tokens(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused audio tokens ``(B, T', d)`` and the attention weights ``(B, T', 1 + text_tokens)``."""
        # audio tokens: (B, C, T) -> (B, d, T') -> (B, T', d)
        audio = self.audio_encoder(self.prepare(batch["x"])).transpose(1, 2) + self.audio_pos
        # cross-attention: queries = audio tokens, keys/values = lyrics tokens
        kv, mask = self.lyrics_tokens(batch)
        ctx, weights = self.cross_attention(audio, kv, kv, key_padding_mask=mask, need_weights=True)
        if self.fusion == "gated":
            g = torch.sigmoid(self.gate(torch.cat([audio, ctx], dim=-1)))
            fused = g * torch.tanh(self.gate_audio(audio)) + (1 - g) * torch.tanh(self.gate_text(ctx))
        else:
            fused = audio + ctx
        return self.fused_norm(fused), weights

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        # posterior: (B, T', d) -> (B, T'*d) -> mu, logvar (B, D)
        mu, logvar = self.posterior(self.fused_tokens(batch)[0].flatten(1)).chunk(2, dim=1)
        return mu, clamp_logvar(logvar)

    def decode(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        # decoders: (B, D) -> audio (B, C, T/pool) and text (B, E)
        audio = self.audio_decoder(self.fc_dec(z).view(-1, *self._bottom))
        return {"x": audio, "text": self.text_decoder(z)}

    def targets(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"x": self.prepare(batch["x"]), "text": self.masked_text(batch)}

    def loss(self, batch: Batch, kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Negative ELBO: audio reconstruction + lyrics reconstruction (songs with lyrics only) + KL."""
        out = self.forward(batch)
        target = self.targets(batch)
        recon = sse(out["recon"]["x"], target["x"]) + batch["has_text"].float() * sse(
            out["recon"]["text"], target["text"]
        )
        kl = gaussian_kl(out["mu"], out["logvar"])
        total = recon + kl_weight * self.beta * kl
        return {"recon": recon.mean(), "kl": kl.mean(), "total": total.mean()}
