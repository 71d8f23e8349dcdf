"""The params reader: defaults match params.yaml's shape, typos and bad values are errors."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from musiclust.params import ParamsError, load_params, parse_params


def test_repo_params_load(repo_root):
    p = load_params(repo_root / "params.yaml")
    assert p.data.source in ("demo", "manifest", "folder")
    assert abs(p.segment.split.train + p.segment.split.val + p.segment.split.test - 1) < 1e-9
    assert len(p.seeds) >= 1


def test_unknown_key_is_named():
    with pytest.raises(ParamsError, match="segment.*windw_s"):
        parse_params({"segment": {"windw_s": 3.0}})


def test_bad_choice_and_type():
    with pytest.raises(ParamsError, match="data.source"):
        parse_params({"data": {"source": "youtube"}})
    with pytest.raises(ParamsError, match="audio.sample_rate must be an integer"):
        parse_params({"audio": {"sample_rate": "22050"}})
    with pytest.raises(ParamsError, match="sum to 1"):
        parse_params({"segment": {"split": {"train": 0.9, "val": 0.2, "test": 0.1}}})


def test_only_beta_vae_reads_beta():
    p = parse_params({"beta": 8, "models": {"vae": {"latent_dim": 4}, "beta_vae": {"latent_dim": 4}}})
    assert p.model_config("beta_vae")["beta"] == 8.0
    assert "beta" not in p.model_config("vae")
    with pytest.raises(ParamsError, match="not under 'models'"):
        p.model_config("nope")


def test_params_are_frozen(repo_root):
    p = load_params(repo_root / "params.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.beta = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.models["vae"]["latent_dim"] = 1  # type: ignore[index]


def test_yaml_is_parsed_safely(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump({"seed": 3}))
    assert load_params(tmp_path / "ok.yaml").seed == 3
