"""Stage train@<model>: train one model key on every seed; write everything under models/<key>/."""

from __future__ import annotations

import argparse
import logging

from musiclust.fileio import write_json
from musiclust.log import run_main, setup_logging
from musiclust.params import load_params
from musiclust.training.run import TrainResult, train_model

log = logging.getLogger("stages.train")


def main(argv: list[str] | None = None) -> TrainResult:
    """Parse paths, load params, train ``--model`` (see docs/pipeline.md, ``models/<key>/``).

    ``--timings`` receives the wall-clock seconds; it is not a DVC output (it differs on every
    run, so it must stay out of the cached folder for the run-cache to work).
    """
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="model key (params.yaml models.<key>)")
    ap.add_argument("--segments", required=True, help="segment stage output folder")
    ap.add_argument("--features", required=True, help="featurize stage output folder")
    ap.add_argument("--lyrics", required=True, help="embed_lyrics output (lyrics.parquet)")
    ap.add_argument("--out", required=True, help="output folder models/<key>")
    ap.add_argument("--timings", required=True, help="JSON of wall-clock timings (not a DVC output)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    result = train_model(
        args.model,
        params.model_config(args.model),
        params.train,
        params.seeds,
        args.segments,
        args.features,
        args.lyrics,
        args.out,
    )
    write_json(args.timings, result.timings)
    log.info(
        "%s: applicable %s, best val loss (mean over seeds) %s, %.1f s",
        args.model,
        result.metrics["applicable"],
        result.metrics.get("best_val_loss_mean", "n/a"),
        result.timings["seconds_total"],
    )
    return result


if __name__ == "__main__":
    run_main(main)
