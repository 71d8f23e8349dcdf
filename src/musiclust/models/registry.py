"""Model key -> class. The key is the same in params.yaml, dvc.yaml, models/<key>/ and metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from musiclust.models.autoencoder import AutoEncoder
from musiclust.models.base import LatentModel, ModelConfigError
from musiclust.models.beta_vae import BetaVAE
from musiclust.models.conv_vae import ConvVAE
from musiclust.models.cvae import CVAE
from musiclust.models.hybrid import HybridVAE
from musiclust.models.multimodal import MultimodalVAE
from musiclust.models.vade import VaDE
from musiclust.models.vae import VAE

REGISTRY: dict[str, type[LatentModel]] = {
    cls.key: cls for cls in (AutoEncoder, VAE, BetaVAE, ConvVAE, CVAE, VaDE, MultimodalVAE, HybridVAE)
}


def model_class(key: str) -> type[LatentModel]:
    """The class registered under ``key`` (error lists the known keys)."""
    try:
        return REGISTRY[key]
    except KeyError:
        raise ModelConfigError(
            f"unknown model {key!r}; known models: {', '.join(sorted(REGISTRY))}"
        ) from None


def build_model(key: str, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> LatentModel:
    """Build model ``key`` from its params settings and the data dimensions.

    ``dims`` holds what the data decides: ``audio_dim`` (vector models), ``logmel_shape``
    (conv_vae), ``text_dim`` (multimodal, hybrid), ``condition_values`` (cvae).
    """
    return model_class(key).from_config(cfg, dims)
