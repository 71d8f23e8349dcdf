"""Stage train@<model>: train one model key on every seed; write everything under models/<key>/."""

from __future__ import annotations

import argparse
import logging

from musiclust.contracts import configs
from musiclust.fileio import write_json
from musiclust.log import run_main, setup_logging
from musiclust.params import ParamsError
from musiclust.training.run import TrainResult, train_model

log = logging.getLogger("stages.train")


def main(argv: list[str] | None = None) -> TrainResult:
    """Parse paths, read the model's folder written by ``configure``, train (see docs/pipeline.md).

    The stage reads no params of its own: ``data/configs/<key>/`` holds the model's settings, the
    ``train`` section and the seeds (resolved and checked by ``configure``). ``--timings``
    receives the wall-clock seconds; it is not a DVC output (it differs on every run, so it must
    stay out of the cached folder for the run-cache to work).
    """
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="model key (an entry of train.models)")
    ap.add_argument("--config", required=True, help="the model's folder data/configs/<key> (configure stage)")
    ap.add_argument("--segments", required=True, help="segment stage output folder")
    ap.add_argument("--features", required=True, help="featurize stage output folder")
    ap.add_argument("--out", required=True, help="output folder models/<key>")
    ap.add_argument("--timings", required=True, help="JSON of wall-clock timings (not a DVC output)")
    args = ap.parse_args(argv)
    setup_logging()
    cfg = configs.read(args.config)
    if cfg.key != args.model:
        raise ParamsError(f"{args.config} configures {cfg.key!r}, not {args.model!r}")
    result = train_model(
        cfg.key, cfg.settings, cfg.train, cfg.seeds, args.segments, args.features, cfg.lyrics, args.out
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
