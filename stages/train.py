"""Stage train@<model>: train one model key on every seed; write checkpoints, latents, history, metrics."""

from __future__ import annotations

import argparse
import json

from musiclust.log import run_main, setup_logging
from musiclust.params import load_params
from musiclust.training.run import train_model


def main(argv: list[str] | None = None) -> dict:
    """Parse paths, load params, train ``--model`` (see docs/pipeline.md, ``models/<key>/``)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="model key (params.yaml models.<key>)")
    ap.add_argument("--segments", required=True, help="segment stage output folder")
    ap.add_argument("--features", required=True, help="featurize stage output folder")
    ap.add_argument("--lyrics", required=True, help="embed_lyrics output (lyrics.parquet)")
    ap.add_argument("--out", required=True, help="output folder models/<key>")
    ap.add_argument("--metrics", required=True, help="metrics JSON path")
    ap.add_argument("--plots", required=True, help="per-epoch history CSV path")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    metrics = train_model(
        args.model,
        params.model_config(args.model),
        params.train,
        params.seeds,
        args.segments,
        args.features,
        args.lyrics,
        args.out,
        args.metrics,
        args.plots,
    )
    print(
        json.dumps(
            {
                "model": args.model,
                "best_val_loss_mean": metrics["best_val_loss_mean"],
                "seconds_total": metrics["seconds_total"],
            }
        )
    )
    return metrics


if __name__ == "__main__":
    run_main(main)
