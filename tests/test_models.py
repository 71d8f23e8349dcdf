"""The model family: one parametrized test over the registry, plus VaDE and multimodal specifics."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score
from tests.conftest import REPO

from musiclust.models import (
    REGISTRY,
    ModelConfigError,
    build_model,
    load_model,
    make_checkpoint,
    save_checkpoint,
)
from musiclust.models.registry import resolve_settings
from musiclust.models.vade import VaDE
from musiclust.params import TrainParams, load_params
from musiclust.training.loop import fit

#: every model is built with its params.yaml settings (resolved by the registry: a new model's
#: block is picked up by every registry-wide test below without a table to extend)
PARAMS = load_params(REPO / "params.yaml")
CFG = resolve_settings(
    dataclasses.replace(PARAMS, train=dataclasses.replace(PARAMS.train, models=tuple(REGISTRY)))
)
B, F, E = 6, 10, 7
MELS, FRAMES = PARAMS.features.n_mels, PARAMS.features.logmel_frames
MFCC, SEQ = PARAMS.features.n_mfcc, PARAMS.features.logmel_frames
DIMS = {
    "audio_dim": F,
    "text_dim": E,
    "condition_values": ["bn", "en"],
    "logmel_shape": [MELS, FRAMES],
    "mfcc_seq_shape": [MFCC, SEQ],
}
SEQUENCE_MODELS = ("conv1d_vae", "attention_mm")
DETERMINISTIC = ("autoencoder", "song_ae")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models train fastest on one thread; the shared test machine is busy."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(key: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if key == "conv_vae":
        x = torch.randn(B, MELS, FRAMES, generator=g) * 5 - 40
    elif key in SEQUENCE_MODELS:
        x = torch.randn(B, MFCC, SEQ, generator=g) * 10 + 3
    else:
        x = torch.randn(B, F, generator=g)
    return {
        "x": x,
        "text": torch.randn(B, E, generator=g),
        "has_text": torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0]),
        "cond": torch.eye(2)[torch.tensor([0, 1, 1, 0, 0, 1])],
        "song": torch.tensor([4.0, 4.0, 9.0, 9.0, 9.0, 2.0]),  # song codes (song-level models)
    }


def _model(key: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(key, CFG[key], DIMS)


#: an author-year citation ("Kingma & Welling, ... 2014", "Higgins et al., ... 2017", "Smith, 2019")
#: or an arXiv id; the title/venue between the authors and the year may run to 160 characters
_NAME = r"[A-Z][a-z][\w'-]*"
CITATION = re.compile(
    rf"{_NAME} et al\.?[^()]{{0,160}}?\b(?:19|20)\d{{2}}\b"  # Higgins et al., ... 2017
    rf"|{_NAME}(?:, {_NAME})*,? (?:&|and) {_NAME}\b[^()]{{0,160}}?\b(?:19|20)\d{{2}}\b"  # A, B & C ... 2017
    rf"|{_NAME},? \(?(?:19|20)\d{{2}}\b"  # Smith, 2019 / Smith (2019)
    r"|arXiv:\d{4}\.\d{4,5}"
)


def test_citation_pattern():
    assert CITATION.search('(Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014)')
    assert CITATION.search("Higgins et al., ICLR 2017") and CITATION.search("see arXiv:1312.6114")
    assert not CITATION.search("MLP (two layers) on a clip feature vector")
    assert not CITATION.search("a (B, 2D) tensor") and not CITATION.search("Trained in 2014 (see above)")


def test_registry_covers_the_family():
    assert set(REGISTRY) == set(CFG) == set(PARAMS.models)
    for key, spec in REGISTRY.items():
        assert spec.key == key and build_model(key, CFG[key], DIMS).key == key
        doc = spec.cls.__doc__
        assert CITATION.search(" ".join(doc.split())), f"{key} must cite its paper (Author, Year)"


def test_each_registry_entry_names_the_class_of_its_schema():
    """An entry holds its class's schema and its class by import path: the class must name that
    same schema, and the inputs a mixin reads must be the schema's."""
    from musiclust.models.base import TextInputs
    from musiclust.models.conv1d_vae import SequenceInputs

    for key, spec in REGISTRY.items():
        cls = spec.cls
        assert cls.schema is spec.schema, f"{key}: {spec.class_path} names another schema"
        assert (cls.key, cls.config_keys, cls.needs, cls.level, cls.x_kind) == (
            spec.schema.key,
            spec.schema.config_keys,
            spec.schema.needs,
            spec.schema.level,
            spec.schema.x_kind,
        )
        assert issubclass(cls, TextInputs) == ("text" in spec.needs), key
        assert issubclass(cls, SequenceInputs) == (spec.x_kind == "mfcc_seq"), key


def test_a_model_states_its_settings_and_inputs_only_in_its_schema():
    """key, config_keys, needs, level, x_kind and the settings checks come from the schema: a class
    that states one itself, names no schema, or contradicts its mixin is refused when defined."""
    from musiclust.models import schema
    from musiclust.models.base import LatentModel, TextInputs
    from musiclust.models.conv1d_vae import SequenceInputs
    from musiclust.models.vae import VAE

    with pytest.raises(TypeError, match=r"sets \['key', 'needs'\]"):
        type("Restated", (VAE,), {"key": "restated", "needs": ("text",)})
    with pytest.raises(TypeError, match=r"sets \['check_spanning'\]"):
        type("OwnCheck", (VAE,), {"check_spanning": classmethod(lambda cls, cfg: None)})
    with pytest.raises(TypeError, match="names no schema"):
        type("NoSchema", (LatentModel,), {})
    with pytest.raises(TypeError, match="TextInputs.*lack 'text'"):
        type("NoText", (TextInputs, VAE), {"schema": schema.VAE})
    with pytest.raises(TypeError, match="SequenceInputs.*not 'mfcc_seq'"):
        type("NoSeq", (SequenceInputs, VAE), {"schema": schema.HYBRID})
    with pytest.raises(ValueError, match="x_kind 'wav'"):
        schema.Schema("wav_vae", frozenset({"latent_dim"}), x_kind="wav")


def test_configure_imports_no_torch(tmp_path):
    """The configure stage checks every model's settings from the schemas alone: neither torch nor
    a model module is imported (torch's import was most of the stage's time)."""
    lyrics = tmp_path / "lyrics.parquet"
    lyrics.write_bytes(b"copied, never read")
    code = (
        "import sys\n"
        "import stages.configure\n"
        "import musiclust.models as models\n"
        f"resolved = stages.configure.main(['--lyrics', {str(lyrics)!r}, '--out', {str(tmp_path / 'c')!r}])\n"
        "assert resolved and set(resolved) <= set(models.REGISTRY), resolved\n"
        "assert issubclass(models.ModelConfigError, ValueError)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('musiclust.models.'))\n"
        "assert loaded == ['musiclust.models.registry', 'musiclust.models.schema'], loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_shapes_loss_and_gradients(key):
    model = _model(key)
    batch = _batch(key)
    model.fit_input_stats({k: v.numpy() for k, v in batch.items()})
    model.train()
    mu, logvar = model.encode(batch)
    n = 3 if model.level == "song" else B  # a song-level model's examples are the batch's 3 songs
    assert model.n_examples(batch) == n
    d = model.latent_dim
    assert mu.shape == (n, d)
    assert logvar is None if key in DETERMINISTIC else logvar.shape == (n, d)
    assert model.latent(batch).shape == (B, d)
    out = model(batch)
    assert out["recon"]["x"].shape == model.targets(batch)["x"].shape
    if key == "conv_vae":
        pool = CFG[key]["pool"]
        assert out["recon"]["x"].shape == (B, 1, MELS // pool[0], FRAMES // pool[1])
    if key == "conv1d_vae":
        assert out["recon"]["x"].shape == (B, MFCC, SEQ // CFG[key]["pool"])
    if key in ("multimodal", "attention_mm", "shared_private"):
        assert out["recon"]["text"].shape == (B, E)
    parts = model.loss(batch)
    assert {"recon", "kl", "total"} <= set(parts) <= {"recon", "kl", "kl_charged", "total"}
    assert all(torch.isfinite(v) for v in parts.values())
    kl = float(parts["kl"].detach())
    assert kl == 0.0 if key in DETERMINISTIC else kl > 0
    parts["total"].backward()
    no_grad = [
        n
        for n, p in model.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or float(p.grad.abs().sum()) == 0.0
    ]
    assert not no_grad, f"{key}: no gradient reaches {no_grad}"


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_same_seed_same_first_step(key):
    def first_step(seed: int) -> tuple[float, float]:
        torch.manual_seed(seed)
        model = build_model(key, CFG[key], DIMS)
        model.fit_input_stats({k: v.numpy() for k, v in _batch(key).items()})
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        loss = model.loss(_batch(key))["total"]
        loss.backward()
        opt.step()
        return float(loss.detach()), float(model.loss(_batch(key))["total"].detach())

    assert first_step(3) == first_step(3)
    assert first_step(3) != first_step(4)


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_checkpoint_round_trip(key, tmp_path):
    model = _model(key)
    batch = _batch(key)
    model.fit_input_stats({k: v.numpy() for k, v in batch.items()})
    model.train()
    for _ in range(2):  # move batch-norm running stats away from their defaults
        model.loss(batch)
    model.eval()
    path = tmp_path / f"{key}.pt"
    save_checkpoint(
        path,
        make_checkpoint(
            model,
            params={"train": {"lr": 0.001}},
            step=1,
            best_val_loss=1.5,
            seed=0,
            inputs={"x_kind": model.x_kind},
        ),
    )
    loaded, ckpt = load_model(path)  # weights_only=True inside
    assert type(loaded) is type(model) and ckpt["constructor"] == model.constructor_kwargs()
    assert ckpt["model_key"] == loaded.key == key  # a class shared by several keys keeps the key
    for (n1, t1), (n2, t2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(t1, t2)
    torch.testing.assert_close(loaded.latent(batch), model.latent(batch))
    torch.testing.assert_close(loaded.loss(batch)["total"], model.loss(batch)["total"])


def test_unknown_model_setting_is_named():
    with pytest.raises(ModelConfigError, match="models.vae: unknown setting.*'latnet_dim'"):
        build_model("vae", {"latnet_dim": 3}, DIMS)
    with pytest.raises(ModelConfigError, match="unknown model 'vea'"):
        build_model("vea", {}, DIMS)
    with pytest.raises(ModelConfigError, match="divisible"):
        build_model("conv_vae", {**CFG["conv_vae"], "channels": [4, 8, 16, 32, 64], "pool": [4, 4]}, DIMS)


def test_beta_scales_the_kl_term():
    torch.manual_seed(0)
    vae = build_model("vae", CFG["vae"], DIMS).eval()
    beta = build_model("beta_vae", {**CFG["beta_vae"], "beta": 8.0, "free_bits": 0.0}, DIMS).eval()
    beta.load_state_dict(vae.state_dict())
    a, b = vae.loss(_batch("vae")), beta.loss(_batch("vae"))
    torch.testing.assert_close(b["total"] - b["recon"], 8.0 * (a["total"] - a["recon"]))


def test_cvae_decoder_uses_the_condition():
    model = _model("cvae_language").eval()
    batch = _batch("cvae_language")
    z = torch.zeros(B, model.latent_dim)
    flipped = {**batch, "cond": 1 - batch["cond"]}
    assert not torch.allclose(model.decode(z, batch)["x"], model.decode(z, flipped)["x"])
    assert not torch.allclose(model.latent(batch), model.latent(flipped))


def test_vade_responsibilities_sum_to_one():
    model = _model("vade")
    gamma = model.responsibilities(torch.randn(50, model.latent_dim) * 10)
    assert gamma.shape == (50, model.n_components) and (gamma >= 0).all()
    torch.testing.assert_close(gamma.sum(1), torch.ones(50))


def _blobs(n_per: int, k: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, size=(k, dim))
    centres *= 6.0 / np.linalg.norm(centres[:, None] - centres[None], axis=2)[np.triu_indices(k, 1)].min()
    y = np.repeat(np.arange(k), n_per)
    x = centres[y] + rng.normal(0, 0.5, size=(len(y), dim))
    x = (x - x.mean(0)) / x.std(0)
    return x.astype(np.float32), y


def test_vade_clusters_separated_blobs():
    x, y = _blobs(n_per=80, k=4, dim=12, seed=0)
    xv, yv = _blobs(n_per=20, k=4, dim=12, seed=0)
    torch.manual_seed(0)
    model = build_model(
        "vade", {"latent_dim": 4, "hidden": [32], "n_components": 4, "pretrain_steps": 150}, {"audio_dim": 12}
    )
    assert isinstance(model, VaDE)
    cfg = TrainParams(
        max_steps=150, eval_every=10, patience=5, kl_warmup_steps=30, batch_size=32, lr=3e-3, device="cpu"
    )
    cpu = torch.device("cpu")
    model.pretraining = True
    fit(model, {"x": x}, {"x": xv}, cfg, seed=0, label="vade/pretrain", device=cpu, kl_warmup_steps=0)
    model.pretraining = False
    model.init_prior(model.latent({"x": torch.as_tensor(x)}).numpy(), seed=0)
    res = fit(model, {"x": x}, {"x": xv}, cfg, seed=0, label="vade", device=cpu)
    assert np.isfinite(res.best_val_loss)
    pred = model.assign({"x": torch.as_tensor(x)}).numpy()
    assert normalized_mutual_info_score(y, pred) > 0.9


def test_multimodal_batch_without_lyrics_trains():
    model = _model("multimodal")
    batch = {**_batch("multimodal"), "has_text": torch.zeros(B)}
    batch["text"] = torch.zeros(B, E)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = []
    for _ in range(5):
        torch.manual_seed(0)
        parts = model.loss(batch)
        assert torch.isfinite(parts["total"])
        opt.zero_grad()
        parts["total"].backward()
        # only the audio path learns: the text expert and decoder get no gradient from this batch
        assert model.text_heads.weight.grad is None or float(model.text_heads.weight.grad.abs().sum()) == 0
        opt.step()
        losses.append(float(parts["total"].detach()))
    assert losses[-1] < losses[0]
    assert not torch.equal(before["audio_heads.weight"], model.audio_heads.weight)
    # without lyrics the posterior is the audio expert combined with the prior alone
    mu_a, lv_a, _, _ = model.experts(batch)
    mu, _ = model.encode(batch)
    torch.testing.assert_close(mu, mu_a / (1 + torch.exp(lv_a)) * 1.0)


def test_multimodal_objective_terms():
    """Eval-mode loss = joint ELBO (both modalities) + audio ELBO (audio) + text ELBO (text, masked)."""
    from musiclust.models.base import gaussian_kl, sse

    model = _model("multimodal").eval()
    batch = _batch("multimodal")
    model.fit_input_stats({k: v.numpy() for k, v in batch.items()})
    mu_a, lv_a, mu_t, lv_t = model.experts(batch)
    m = batch["has_text"]
    one = torch.ones_like(m)
    poe = model.product_of_experts
    text_target = model.targets(batch)["text"]

    def parts(mu, lv, audio, text):
        rec = model.decode(mu, batch)
        r = (sse(rec["x"], batch["x"]) if audio else 0) + (m * sse(rec["text"], text_target) if text else 0)
        return r, gaussian_kl(mu, lv)

    r1, k1 = parts(*poe([mu_a, mu_t], [lv_a, lv_t], [one, m]), True, True)
    r2, k2 = parts(*poe([mu_a], [lv_a], [one]), True, False)
    r3, k3 = parts(*poe([mu_t], [lv_t], [m]), False, True)
    expected = (r1 + k1 + r2 + k2 + m * (r3 + k3)).mean()
    torch.testing.assert_close(model.loss(batch)["total"], expected)
    # without lyrics the joint posterior is the audio one: the loss is twice the audio-only ELBO
    empty = {**batch, "has_text": torch.zeros(B)}
    mu, lv = poe([mu_a], [lv_a], [one])
    ra, ka = sse(model.decode(mu, empty)["x"], batch["x"]), gaussian_kl(mu, lv)
    torch.testing.assert_close(model.loss(empty)["total"], (2 * (ra + ka)).mean())


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_training_hooks_of_the_interface(key):
    """What the loop uses beyond encode/decode/loss: objective, pretraining, own assignments."""
    model = _model(key)
    batch = _batch(key)
    model.fit_input_stats({k: v.numpy() for k, v in batch.items()})
    model.eval()  # posterior means: loss is deterministic, so total must equal the objective
    parts = model.loss(batch, kl_weight=0.3)
    # of the charged KL (beta_vae's free bits floor it): what the loop's training total is built from
    total = model.objective(parts["recon"], parts.get("kl_charged", parts["kl"]), 0.3)
    assert float(parts["total"].detach()) == pytest.approx(float(total.detach()), rel=1e-5)
    own = model.assign(batch)
    if key == "vade":
        assert model.pretrain_steps == CFG["vade"]["pretrain_steps"]
        assert own.shape == (B,) and own.dtype == torch.int64
        codes = model.latent(batch).numpy()
        summary = model.after_pretraining(np.concatenate([codes] * 3), seed=0)
        assert {"gmm_converged", "gmm_lower_bound"} <= set(summary)
    else:
        assert model.pretrain_steps == 0 and own is None
        assert model.after_pretraining(np.zeros((4, 3), np.float32), seed=0) == {}


def test_no_model_class_checks_outside_models():
    """Training, clustering and reporting use the interface, never ``isinstance(m, <Model>)``."""
    from pathlib import Path

    import musiclust

    root = Path(musiclust.__file__).parent
    names = "|".join(spec.cls.__name__ for spec in REGISTRY.values())
    pattern = re.compile(rf"isinstance\([^)]*\b({names})\b")
    hits = [
        f"{p.relative_to(root)}"
        for p in root.rglob("*.py")
        if "models" not in p.relative_to(root).parts and pattern.search(p.read_text())
    ]
    assert not hits, f"model class checks outside models/: {hits}"


def test_cvae_keys_fix_their_own_condition():
    from musiclust.models.cvae import CVAE

    lang, genre = _model("cvae_language"), _model("cvae_genre")
    assert type(lang) is type(genre) is CVAE
    assert (lang.key, lang.condition) == ("cvae_language", "language")
    assert (genre.key, genre.condition) == ("cvae_genre", "genre")
    # repeating the fixed value is allowed; contradicting it names the key and the setting
    assert build_model("cvae_genre", {**CFG["cvae_genre"], "condition": "genre"}, DIMS).condition == "genre"
    with pytest.raises(ModelConfigError, match=r"models.cvae_genre: \{'condition': 'language'\}"):
        build_model("cvae_genre", {**CFG["cvae_genre"], "condition": "language"}, DIMS)
    with pytest.raises(ModelConfigError, match=r"models.cvae_language.latent_dim must be >= 1"):
        build_model("cvae_language", {**CFG["cvae_language"], "latent_dim": 0}, DIMS)


@pytest.mark.parametrize("fusion", ["residual", "gated"])
def test_attention_mm_without_lyrics_is_masked(fusion):
    torch.manual_seed(0)
    model = build_model("attention_mm", {**CFG["attention_mm"], "fusion": fusion}, DIMS)
    batch = _batch("attention_mm")
    model.fit_input_stats({k: v.numpy() for k, v in batch.items()})
    empty = {**batch, "has_text": torch.zeros(B)}  # text stays random: the mask alone must hide it
    model.eval()
    _, weights = model.fused_tokens(empty)
    cfg = CFG["attention_mm"]
    tokens = SEQ // cfg["pool"] // 2 ** len(cfg["channels"])  # time steps at the bottom of the encoder
    assert (
        weights.shape == (B, tokens, 1 + CFG["attention_mm"]["text_tokens"]) and torch.isfinite(weights).all()
    )
    torch.testing.assert_close(weights[..., 0], torch.ones(B, tokens))  # all on the null token
    other = {**empty, "text": torch.randn(B, E)}
    torch.testing.assert_close(model.latent(empty), model.latent(other))  # lyrics do not leak in
    assert not torch.allclose(model.latent(batch), model.latent({**batch, "text": torch.randn(B, E)}))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        torch.manual_seed(0)
        parts = model.loss(empty)
        assert all(torch.isfinite(v) for v in parts.values())
        opt.zero_grad()
        parts["total"].backward()
        assert model.text_proj.weight.grad is None or float(model.text_proj.weight.grad.abs().sum()) == 0
        opt.step()
        losses.append(float(parts["total"].detach()))
    assert losses[-1] < losses[0]


def test_attention_mm_settings_are_checked():
    with pytest.raises(ModelConfigError, match="heads: 3 must divide"):
        build_model("attention_mm", {**CFG["attention_mm"], "heads": 3}, DIMS)
    with pytest.raises(ModelConfigError, match="fusion: 'sum' is not one of residual, gated"):
        build_model("attention_mm", {**CFG["attention_mm"], "fusion": "sum"}, DIMS)
    with pytest.raises(ModelConfigError, match="divisible"):
        build_model("conv1d_vae", {**CFG["conv1d_vae"], "channels": [4, 8, 16, 32, 64, 128]}, DIMS)


def test_conv_vae_sorted_target_ignores_where_events_fall_in_the_window():
    model = build_model("conv_vae", {**CFG["conv_vae"], "target": "sorted"}, DIMS)
    batch = _batch("conv_vae")
    model.fit_input_stats({"x": batch["x"].numpy()})
    pool = CFG["conv_vae"]["pool"]
    target = model.targets(batch)["x"]  # (B, 1, MELS / pool[0], FRAMES / pool[1])
    assert target.shape == (B, 1, MELS // pool[0], FRAMES // pool[1])
    assert bool((target[..., 1:] >= target[..., :-1]).all())  # each band sorted over time
    shifted = {"x": torch.roll(batch["x"], shifts=3 * pool[1], dims=-1)}  # whole pooling cells move
    torch.testing.assert_close(model.targets(shifted)["x"], target)
    # the patch target does depend on the position, and an unknown target is named
    patch = build_model("conv_vae", {**CFG["conv_vae"], "target": "patch"}, DIMS)
    patch.fit_input_stats({"x": batch["x"].numpy()})
    assert not torch.allclose(patch.targets(shifted)["x"], patch.targets(batch)["x"])
    with pytest.raises(ModelConfigError, match="models.conv_vae.target must be one of"):
        build_model("conv_vae", {**CFG["conv_vae"], "target": "mean"}, DIMS)


def test_shared_private_without_lyrics_is_audio_alone():
    model = _model("shared_private").eval()
    batch = _batch("shared_private")
    model.fit_input_stats({k: v.numpy() for k, v in batch.items()})
    none = {**batch, "has_text": torch.zeros(B)}
    mu, logvar = model.encode(none)
    p = model.posteriors(none)
    zs, za, zt = model.split(mu)
    # shared = audio expert x prior; audio private as encoded; text private = the prior
    torch.testing.assert_close(zs, p["audio"][0] / (1 + torch.exp(p["audio"][1])))
    torch.testing.assert_close(za, p["z_a"][0])
    assert torch.equal(zt, torch.zeros_like(zt)) and torch.equal(model.split(logvar)[2], torch.zeros_like(zt))
    # the lyrics change the text part of songs that have them, never the audio-private part
    other = {**batch, "text": batch["text"] + 3.0}
    a, b = model.split(model.encode(batch)[0]), model.split(model.encode(other)[0])
    torch.testing.assert_close(a[1], b[1])
    assert not torch.allclose(a[2][batch["has_text"] > 0], b[2][batch["has_text"] > 0])


def test_shared_private_keeps_what_each_modality_alone_knows():
    """Audio holds one grouping ("genre"), lyrics an independent one ("language"): K-Means on the
    latent must find both (on this data, measured: multimodal 1.0 / 0.72, hybrid 1.0 / 0.58 NMI)."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    n = 400
    genre, lang = rng.integers(0, 4, n), rng.integers(0, 2, n)
    audio, _ = _blobs(n_per=1, k=4, dim=12, seed=1)
    text, _ = _blobs(n_per=1, k=2, dim=10, seed=2)
    x = (audio[genre] + rng.normal(0, 0.3, (n, 12))).astype(np.float32)
    t = (text[lang] + rng.normal(0, 0.3, (n, 10))).astype(np.float32)
    data = {"x": x, "text": t, "has_text": np.ones(n, np.float32)}
    torch.manual_seed(0)
    model = build_model(
        "shared_private",
        {"latent_dim": 8, "audio_private_dim": 4, "text_private_dim": 2, "hidden": [32], "text_hidden": [16]},
        {"audio_dim": 12, "text_dim": 10},
    )
    model.fit_input_stats(data)
    cfg = TrainParams(
        max_steps=300, eval_every=10, patience=10, kl_warmup_steps=50, batch_size=32, lr=3e-3, device="cpu"
    )
    tr = {k: v[:300] for k, v in data.items()}
    va = {k: v[300:] for k, v in data.items()}
    fit(model, tr, va, cfg, seed=0, label="shared_private", device=torch.device("cpu"))
    z = model.latent({k: torch.as_tensor(v) for k, v in data.items()}).numpy()
    for labels, k in ((lang, 2), (genre, 4)):
        pred = KMeans(k, n_init=10, random_state=0).fit_predict(z)
        assert normalized_mutual_info_score(labels, pred) > 0.9, (
            k,
            normalized_mutual_info_score(labels, pred),
        )
    # and each part carries its own modality's grouping
    _, za, zt = (p.numpy() for p in model.split(torch.as_tensor(z)))
    assert normalized_mutual_info_score(genre, KMeans(4, n_init=10, random_state=0).fit_predict(za)) > 0.8
    assert normalized_mutual_info_score(lang, KMeans(2, n_init=10, random_state=0).fit_predict(zt)) > 0.8


def test_beta_vae_free_bits_floor_each_dimension():
    """With free bits, a dimension below the floor is charged the floor (no gradient pushes it
    further toward the prior); without, the objective is the plain beta-VAE one."""
    torch.manual_seed(0)
    plain = build_model("beta_vae", {**CFG["beta_vae"], "free_bits": 0.0}, DIMS).eval()
    floored = build_model("beta_vae", {**CFG["beta_vae"], "free_bits": 100.0}, DIMS).eval()
    floored.load_state_dict(plain.state_dict())
    batch = _batch("beta_vae")
    a, b = plain.loss(batch), floored.loss(batch)
    torch.testing.assert_close(a["recon"], b["recon"])
    torch.testing.assert_close(a["kl"], b["kl"])  # the reported KL is the true one
    # every dimension is far below 100 nats: the KL part of the total is beta * latent_dim * 100, a constant
    const = CFG["beta_vae"]["beta"] * floored.latent_dim * 100.0
    torch.testing.assert_close(b["total"] - b["recon"], torch.tensor(const))
    torch.testing.assert_close(b["kl_charged"], torch.tensor(floored.latent_dim * 100.0))
    floored.train()
    floored.zero_grad()
    floored.loss(batch)["total"].backward()
    assert float(floored.mu_head.weight.grad.abs().sum()) > 0  # the reconstruction still trains the encoder
    with pytest.raises(ModelConfigError, match="free_bits must be >= 0"):
        build_model("beta_vae", {**CFG["beta_vae"], "free_bits": -1.0}, DIMS)


def test_shared_private_needs_a_shared_dimension():
    with pytest.raises(ModelConfigError, match="must exceed audio_private_dim"):
        build_model("shared_private", {**CFG["shared_private"], "latent_dim": 2}, DIMS)


@pytest.mark.parametrize("key", ["song_vae", "song_ae"])
def test_song_embedding_ignores_clip_order_and_is_shared_by_a_songs_clips(key):
    """The song latent is a function of the SET of its clips: permuting the rows of a batch (within
    and across songs) changes nothing, every clip of a song gets the song's latent, and the
    decoder's target (the song's clip mean and std) is permutation invariant too."""
    model = _model(key).eval()
    batch = _batch(key)
    perm = torch.tensor([5, 3, 0, 4, 1, 2])
    shuffled = {k: v[perm] for k, v in batch.items()}
    z, z_perm = model.latent(batch), model.latent(shuffled)
    torch.testing.assert_close(z_perm, z[perm])
    torch.testing.assert_close(model.encode(shuffled)[0], model.encode(batch)[0])
    torch.testing.assert_close(model.targets(shuffled)["x"], model.targets(batch)["x"])
    song = batch["song"]
    for code in song.unique():
        rows = z[song == code]
        assert torch.equal(rows, rows[:1].expand_as(rows)), f"clips of song {int(code)} differ"
    assert not torch.allclose(z[0], z[2])  # songs 4 and 9 are told apart
    # the targets are each song's clip mean and (population) std, songs in order of their code
    x = batch["x"]
    torch.testing.assert_close(
        model.targets(batch)["x"][2], torch.cat([x[2:5].mean(0), x[2:5].std(0, unbiased=False)])
    )


def test_song_vae_trains_on_a_subset_of_each_songs_clips():
    """In training the encoder sees at most clips_per_song clips of a song (a fresh draw each
    call, seeded by torch's RNG); in eval it sees all of them."""
    torch.manual_seed(0)
    model = build_model("song_ae", {**CFG["song_ae"], "clips_per_song": 2}, DIMS)
    member = model.members(_batch("song_ae"))  # (3 songs, 6 clips)
    assert member.sum(1).tolist() == [1.0, 2.0, 3.0]  # codes 2, 4, 9
    model.train()
    torch.manual_seed(0)
    draws = [model._subset(member) for _ in range(20)]
    assert all((d <= member).all() and d.sum(1).tolist() == [1.0, 2.0, 2.0] for d in draws)
    assert len({tuple(d[2].tolist()) for d in draws}) > 1  # song 9's three clips: the pair varies
    model.eval()
    assert torch.equal(model._subset(member), member)


def test_conv_vae_fast_input_path_gives_the_reference_values_exactly():
    """The speed-ups of the batch path (standardizing without transposes, the sorted target
    sorted by numpy on CPU, float16 rows cast in torch) change no number: each is compared
    bit for bit with the straightforward computation."""
    from musiclust.training.streaming import ClipBatches

    model = build_model("conv_vae", {**CFG["conv_vae"], "target": "sorted"}, DIMS)
    rng = np.random.default_rng(3)
    x16 = rng.normal(-40.0, 6.0, size=(B, MELS, FRAMES)).astype(np.float16)
    model.fit_input_stats({"x": x16})
    x = ClipBatches({"x": x16})[list(range(B))]["x"]
    assert x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(x16.astype(np.float32)))
    ref = (x.transpose(1, 2) - model.norm.mean) / model.norm.std
    ref = torch.nn.functional.avg_pool2d(
        ref.transpose(1, 2).unsqueeze(1), kernel_size=tuple(CFG["conv_vae"]["pool"])
    )
    assert torch.equal(model._prepare(x), ref)
    assert torch.equal(model.targets({"x": x})["x"], torch.sort(ref, dim=-1).values)
    # the convolutions hold channels-last weights (oneDNN's CPU layout); the checkpoint
    # round trip of the registry tests rebuilds the same layout
    assert model.encoder[0].weight.is_contiguous(memory_format=torch.channels_last)
