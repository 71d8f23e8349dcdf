"""Genre in the embeddings of a pretrained music tagger (musicnn), measured outside the pipeline.

musicnn (Pons and Serra 2019, ISC licence) ships the weights of two taggers in its PyPI wheel, so it
runs offline: ``MTT_musicnn`` (MagnaTagATune's 50 tags) and ``MSD_musicnn`` (the Million Song
Dataset's 50 Last.fm tags). Its code needs TensorFlow 1 graph mode, so this script runs in a
scratch environment, not in musiclust's (docs/quality.md has the numbers it gave)::

    python -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu tf_keras librosa soundfile pandas pyarrow scikit-learn
    /tmp/tfenv/bin/pip install --no-deps musicnn          # its pins (numpy<1.17) are stale
    TF_USE_LEGACY_KERAS=1 /tmp/tfenv/bin/python benchmarks/musicnn_probe.py \\
        --songs $MUSICLUST_SHARED_DATA/songs_en_de_400/manifest.csv --segments <clone>/data/segments \\
        --model MTT_musicnn --out /tmp/mtt.parquet

Each song is cut into musicnn's own non-overlapping 3 s windows (its training input length); the
song vector is the mean over windows of a layer (tag probabilities, the 200-unit penultimate layer,
mean or max pooling). Scored as the headline: K-Means with k = the number of genres, fit on the
train songs of ``--segments`` (all songs when no split is given), 3 seeds, NMI on the test songs and
on all songs; plus the cross-validated supervised probes of ``benchmarks/ceiling.py``.

One deliberate change to musicnn: it casts the mel spectrogram to float16 before
``log10(10000 x + 1)``, which overflows to infinity on loud audio (genre NMI 0.02 on
songs_en_de_400); the log is taken in float32 here.
"""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("benchmarks.musicnn_probe")
LAYERS = {"tags": "tag_", "penultimate": "pen_", "mean_pool": "mean_", "max_pool": "max_"}


def extract(songs: pd.DataFrame, root: Path, model: str) -> pd.DataFrame:
    """One row per song and 3 s window: the four layers' activations."""
    import librosa
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    labels = config.MTT_LABELS if "MTT" in model else config.MSD_LABELS
    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        training = tf.compat.v1.placeholder(tf.bool)
        y, _, _, _, _, _, mean_pool, max_pool, pen = models.define_model(x, training, model, len(labels))
        tags = tf.nn.sigmoid(y)
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, os.path.dirname(models.__file__) + "/" + model + "/")
    rows = []
    for song_id, path in zip(songs["song_id"], songs["path"], strict=True):
        audio, sr = librosa.load(root / path, sr=config.SR)
        mel = librosa.feature.melspectrogram(
            y=audio, sr=sr, hop_length=config.FFT_HOP, n_fft=config.FFT_SIZE, n_mels=config.N_MELS
        ).T
        mel = np.log10(10000 * mel.astype(np.float32) + 1)  # float32: musicnn's float16 overflows
        batch = np.stack([mel[t : t + n_frames] for t in range(0, mel.shape[0] - n_frames + 1, n_frames)])
        out = sess.run([tags, pen, mean_pool, max_pool], feed_dict={x: batch, training: False})
        for w in range(len(batch)):
            row = {"song_id": song_id, "window": w}
            for prefix, values in zip(LAYERS.values(), out, strict=True):
                row.update({f"{prefix}{j:03d}": float(v) for j, v in enumerate(values[w])})
            rows.append(row)
    return pd.DataFrame(rows)


def score(windows: pd.DataFrame, songs: pd.DataFrame, label: str) -> list[str]:
    """Markdown rows: per layer, K-Means NMI (test, all) and the supervised probes' NMI (all)."""
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import normalized_mutual_info_score as nmi
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    means = windows.groupby("song_id").mean(numeric_only=True)
    meta = songs.set_index("song_id").loc[means.index]
    y = meta[label].astype(str).to_numpy()
    train = (meta["split"] == "train").to_numpy()
    test = (meta["split"] == "test").to_numpy()
    k = len(set(y))
    rows = []
    for layer, prefix in LAYERS.items():
        x = means[[c for c in means.columns if c.startswith(prefix)]].to_numpy()
        x = StandardScaler().fit(x[train]).transform(x)
        runs = []
        for seed in range(3):
            p = KMeans(k, n_init=10, random_state=seed).fit(x[train]).predict(x)
            runs.append((nmi(y[test], p[test]) if test.any() else np.nan, nmi(y, p)))
        sup = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for clf in (
                SVC(class_weight="balanced"),
                LogisticRegression(C=0.1, class_weight="balanced", max_iter=5000),
            ):
                pred = cross_val_predict(
                    make_pipeline(StandardScaler(), clf),
                    x,
                    y,
                    cv=StratifiedKFold(5, shuffle=True, random_state=0),
                )
                sup.append(nmi(y, pred))
        t, a = np.mean(runs, axis=0)
        rows.append(f"| {layer} ({x.shape[1]}) | {t:.3f} | {a:.3f} | {sup[0]:.3f} / {sup[1]:.3f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", required=True, help="a manifest.csv (track_id, source) or labels.csv (path)")
    ap.add_argument("--segments", default=None, help="a pipeline's data/segments: the train/test split")
    ap.add_argument("--model", default="MTT_musicnn", choices=["MTT_musicnn", "MSD_musicnn"])
    ap.add_argument("--label", default="genre")
    ap.add_argument("--out", required=True, help="parquet of the window activations (reused if present)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = pd.read_csv(args.songs)
    key = "track_id" if "track_id" in table else "path"
    songs = pd.DataFrame(
        {
            "song_id": table[key],
            "path": table["source" if "source" in table else "path"],
            args.label: table[args.label],
        }
    )
    if args.segments:
        seg = pd.read_parquet(Path(args.segments) / "segments.parquet")
        split = seg.drop_duplicates("track_id").set_index("track_id")["split"]
        songs["split"] = songs["song_id"].map(split)
    else:
        songs["split"] = "train"
    out = Path(args.out)
    windows = pd.read_parquet(out) if out.exists() else extract(songs, Path(args.songs).parent, args.model)
    windows.to_parquet(out)
    head = [
        f"{args.model}, {len(songs)} songs, {args.label}: K-Means k = classes fit on train songs, 3 seeds",
        "| layer (dim) | NMI test | NMI all | supervised svm_rbf / logistic (all) |",
        "|---|---|---|---|",
    ]
    log.info("\n%s", "\n".join(head + score(windows, songs, args.label)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
