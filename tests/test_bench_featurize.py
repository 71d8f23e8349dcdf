"""``musiclust bench featurize``: runs both contenders on the same files and reports one line."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import soundfile as sf

from musiclust.bench import featurize as bench
from musiclust.bench import synth

LINE = re.compile(r"^featurize: (\d+)x realtime, (\d+\.\d)x the plain librosa loop, peak (\d+) MiB$")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_bench_prints_the_summary_line_last(capsys, tmp_path):
    args = _args(
        "--clips", "12", "--baseline-clips", "3", "--workers", "2", "--params", str(tmp_path / "none.yaml")
    )
    assert bench.run(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    m = LINE.match(out[-1])
    assert m, out[-1]
    assert int(m.group(1)) > 0 and float(m.group(2)) > 0 and 50 < int(m.group(3)) < 4000


def test_bench_rejects_unknown_sets(tmp_path):
    with pytest.raises(SystemExit, match="not one of"):
        bench.run(
            _args("--clips", "2", "--sets", "mfcc_stats,bogus", "--params", str(tmp_path / "none.yaml"))
        )


def test_synthetic_clips_are_deterministic_wavs(tmp_path):
    a = synth.write_clips(tmp_path, 2, 1.0, seed=5)
    y, sr = sf.read(a[1], dtype="float32")
    assert sr == 22050 and y.shape == (22050,) and sf.info(a[1]).subtype == "PCM_16"
    again = synth.synth_clip(np.random.default_rng([5, 0]), 22050)
    first, _ = sf.read(a[0], dtype="float32")
    np.testing.assert_allclose(first, again, atol=1 / 32768 + 1e-6)
    assert 0.1 < np.abs(y).max() <= 0.5 + 1e-3


def test_cli_dispatches_to_the_bench(capsys, tmp_path):
    pytest.importorskip("musiclust.assign")  # the CLI also wires `assign`
    from musiclust.cli import main

    assert (
        main(
            [
                "bench",
                "featurize",
                "--clips",
                "4",
                "--baseline-clips",
                "2",
                "--workers",
                "1",
                "--params",
                str(tmp_path / "none.yaml"),
            ]
        )
        == 0
    )
    assert LINE.match(capsys.readouterr().out.strip().splitlines()[-1])
