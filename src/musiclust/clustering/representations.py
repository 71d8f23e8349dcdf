"""The things that get clustered: model latents and baselines, all treated alike.

A :class:`Representation` holds, per seed, one vector per clip (``Units``), in
the order of ``segments.parquet`` restricted to the clips that can be used.
Song-level vectors are the mean over a song's clips (:func:`song_means`), the
same rule for every representation, so no model gets a different song
summary than a baseline.

Baselines (``cluster.baselines``):
- ``raw``: the standardized feature vector the vector models read (``train.features``);
- ``pca``: PCA of ``raw`` fit on training clips, with as many components as the
  models' latent dimension;
- ``spectral_features``: the standardized hand-crafted ``spectral`` set;
- ``lyrics``: the song's lyrics embedding, given to each of its clips; songs
  without lyrics are left out of this representation (and counted);
- ``raw_lyrics``: ``raw`` beside the lyrics embedding's leading principal components
  (as many as ``pca``), each block scaled so that the training songs' mean vectors have unit
  total variance: the plain early-fusion baseline a multimodal model has to beat, with neither
  modality outweighing the other by its number of columns; songs without lyrics are left out;
- ``metadata``: the song metadata columns named in ``cluster.metadata_columns``
  (:mod:`musiclust.clustering.metadata`), given to each of the song's clips.

Baselines do not depend on a training seed; their seeds only vary the
clustering algorithm's random state.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from musiclust.contracts import lyrics as lyrics_contract
from musiclust.contracts.clusters import SEED_INDEPENDENT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Units:
    """Vectors of one level (clips or songs) with their ids and split."""

    unit_id: np.ndarray  # (n,) str: segment_id for clips, song_id for songs
    song_id: np.ndarray  # (n,) str
    split: np.ndarray  # (n,) str: train / val / test
    x: np.ndarray  # (n, d) float32

    def __post_init__(self) -> None:
        n = len(self.unit_id)
        if not (len(self.song_id) == len(self.split) == self.x.shape[0] == n):
            raise ValueError("Units: ids, splits and vectors have different lengths")

    def __len__(self) -> int:
        return len(self.unit_id)

    def subset(self, mask: np.ndarray) -> Units:
        return Units(self.unit_id[mask], self.song_id[mask], self.split[mask], self.x[mask])


@dataclass
class Representation:
    """One clustered representation: clip vectors per seed plus provenance."""

    name: str
    kind: str  # "model" | "baseline"
    description: str
    columns: list[str]
    clips: dict[int, Units]  # seed (or SEED_INDEPENDENT) -> clip vectors
    conditioned_on: tuple[str, ...] = ()
    own_clusters: dict[int, np.ndarray] = field(default_factory=dict)  # seed -> cluster per clip (vade)
    counts: dict[str, int] = field(default_factory=dict)  # clips in / dropped with reason
    modality: str = "audio"  # audio | lyrics | audio+lyrics: what the vectors were computed from
    #: what one vector describes: "clip", or "song" when each clip carries its song's vector (the
    #: lyrics and metadata baselines, song-level models), whose clip-level runs are song-level too
    vector_level: str = "clip"

    def units(self, seed: int) -> Units:
        """Clip vectors for ``seed`` (the shared matrix when seed-independent)."""
        if seed in self.clips:
            return self.clips[seed]
        if SEED_INDEPENDENT in self.clips:
            return self.clips[SEED_INDEPENDENT]
        raise KeyError(
            f"representation {self.name!r} has no latents for seed {seed} (has {sorted(self.clips)})"
        )

    @property
    def seed_independent(self) -> bool:
        return set(self.clips) == {SEED_INDEPENDENT}

    @property
    def dim(self) -> int:
        return len(self.columns)


def song_means(clips: Units) -> Units:
    """Mean vector of each song's clips, songs in order of first appearance."""
    codes, songs = pd.factorize(pd.Series(clips.song_id), sort=False)
    n = len(songs)
    sums = np.zeros((n, clips.x.shape[1]), dtype=np.float64)
    np.add.at(sums, codes, clips.x)
    counts = np.bincount(codes, minlength=n).astype(np.float64)
    first = np.unique(codes, return_index=True)[1]
    split = clips.split[first]
    songs_arr = np.asarray(songs, dtype=object)
    return Units(songs_arr, songs_arr.copy(), split, (sums / counts[:, None]).astype(np.float32))


def usable_clips(segments: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Clips that get clustered: not silent, with a known split. Returns (frame, counts)."""
    counts = {"clips_in": len(segments)}
    silent = (
        segments["is_silent"].fillna(False).astype(bool)
        if "is_silent" in segments
        else pd.Series(False, index=segments.index)
    )
    bad_split = ~segments["split"].isin(["train", "val", "test"])
    counts["dropped_silent"] = int(silent.sum())
    counts["dropped_bad_split"] = int((bad_split & ~silent).sum())
    keep = segments[~silent & ~bad_split].reset_index(drop=True)
    counts["clips_used"] = len(keep)
    return keep, counts


def _align(
    name: str, clips: pd.DataFrame, ids: pd.Series, x: np.ndarray, columns: Sequence[str]
) -> tuple[Units, dict[str, int]]:
    """Vectors ``x`` (rows keyed by segment ``ids``) reordered to ``clips``; missing/non-finite dropped."""
    pos = pd.Series(np.arange(len(ids)), index=pd.Index(ids.astype(str)))
    if pos.index.has_duplicates:
        raise ValueError(f"{name}: duplicate segment_id rows in the input")
    idx = pos.reindex(clips["segment_id"].astype(str)).to_numpy()
    have = ~pd.isna(idx)
    counts = {"dropped_missing_vector": int((~have).sum())}
    xs = np.full((len(clips), x.shape[1]), np.nan, dtype=np.float32)
    xs[have] = x[idx[have].astype(int)]
    finite = np.isfinite(xs).all(axis=1)
    counts["dropped_non_finite"] = int((have & ~finite).sum())
    keep = have & finite
    if (~keep).any():
        log.warning("%s: %d clip(s) without a usable vector left out (%s)", name, int((~keep).sum()), counts)
    units = Units(
        clips["segment_id"].astype(str).to_numpy()[keep],
        clips["song_id"].astype(str).to_numpy()[keep],
        clips["split"].astype(str).to_numpy()[keep],
        xs[keep],
    )
    counts["clips"] = len(units)
    return units, counts


def model_representation(
    key: str, clips: pd.DataFrame, latents: pd.DataFrame, info: Mapping | None = None
) -> Representation:
    """A trained model's per-clip latents (``z_*`` columns, one block per seed)."""
    zcols = sorted(c for c in latents.columns if c.startswith("z_"))
    if not zcols:
        raise ValueError(f"models/{key}/latents.parquet has no z_* columns")
    info = dict(info or {})
    rep = Representation(
        name=key,
        kind="model",
        description=f"latents of model {key} ({len(zcols)} dims)",
        columns=zcols,
        clips={},
        conditioned_on=tuple(info.get("conditioned_on") or ()),
        # a model that read the lyrics embedding (info.json inputs.text) is multimodal
        modality="audio+lyrics" if (info.get("inputs") or {}).get("text") else "audio",
        vector_level=str(info.get("level") or "clip"),
    )
    for seed, block in latents.groupby("seed", sort=True):
        units, counts = _align(
            f"{key} seed {seed}", clips, block["segment_id"], block[zcols].to_numpy(np.float32), zcols
        )
        rep.clips[int(seed)] = units
        rep.counts.update({f"seed_{int(seed)}_{k}": v for k, v in counts.items()})
        if "cluster" in block.columns:
            own = pd.Series(block["cluster"].to_numpy(), index=block["segment_id"].astype(str))
            rep.own_clusters[int(seed)] = own.reindex(units.unit_id).to_numpy()
    return rep


def baseline_representation(
    name: str, clips: pd.DataFrame, ids: pd.Series, x: np.ndarray, columns: Sequence[str], description: str
) -> Representation:
    """A seed-independent baseline from per-clip vectors keyed by ``segment_id``."""
    units, counts = _align(name, clips, ids, x, columns)
    return Representation(
        name, "baseline", description, list(columns), {SEED_INDEPENDENT: units}, counts=counts
    )


def pca_representation(raw: Representation, n_components: int) -> Representation:
    """PCA of ``raw`` fit on training clips only (no test information shapes the axes)."""
    units = raw.units(SEED_INDEPENDENT)
    train = units.split == "train"
    if train.sum() < 2:
        raise ValueError("pca baseline: fewer than two training clips to fit PCA on")
    n_components = int(min(n_components, units.x.shape[1], train.sum()))
    pca = PCA(n_components=n_components, svd_solver="full").fit(units.x[train])
    z = pca.transform(units.x).astype(np.float32)
    cols = [f"pc_{i:02d}" for i in range(n_components)]
    explained = float(pca.explained_variance_ratio_.sum())
    return Representation(
        "pca",
        "baseline",
        f"PCA of raw ({n_components} components fit on train clips, {explained:.1%} of train variance)",
        cols,
        {SEED_INDEPENDENT: Units(units.unit_id, units.song_id, units.split, z)},
        counts=dict(raw.counts),
    )


def lyrics_representation(clips: pd.DataFrame, lyrics: pd.DataFrame) -> Representation:
    """Each clip gets its song's lyrics embedding; songs without lyrics are left out."""
    emb = sorted(lyrics_contract.embedding_columns(lyrics))
    if not emb:
        raise ValueError("lyrics table has no emb_* columns")
    has = (
        lyrics["has_lyrics"].fillna(False).astype(bool)
        if "has_lyrics" in lyrics
        else pd.Series(True, index=lyrics.index)
    )
    with_lyrics = lyrics[has].drop_duplicates("song_id").set_index("song_id")
    song_of_clip = clips["song_id"].astype(str)
    in_lyrics = song_of_clip.isin(with_lyrics.index.astype(str))
    n_songs = clips["song_id"].nunique()
    n_without = clips.loc[~in_lyrics, "song_id"].nunique()
    if n_without:
        log.info(
            "lyrics baseline: %d of %d song(s) have no lyrics and are left out of it", n_without, n_songs
        )
    sub = clips[in_lyrics]
    x = with_lyrics.reindex(sub["song_id"].astype(str))[emb].to_numpy(np.float32)
    units, counts = _align("lyrics", sub, sub["segment_id"], x, emb)
    counts["songs_without_lyrics"] = int(n_without)
    counts["clips_of_songs_without_lyrics"] = int((~in_lyrics).sum())
    return Representation(
        "lyrics",
        "baseline",
        f"lyrics embedding ({len(emb)} dims) of songs with lyrics, shared by their clips",
        emb,
        {SEED_INDEPENDENT: units},
        counts=counts,
        modality="lyrics",
        vector_level="song",
    )


def fused_representation(raw: Representation, lyrics: Representation, n_components: int) -> Representation:
    """``raw`` clip vectors beside the lyrics embedding's leading principal components.

    The PCA is fit on the training songs' embeddings (one row per song, so a song's clip count
    does not weigh it). Each block is centred and divided by the root mean squared norm of the
    training songs' mean vectors, so both modalities carry unit total variance where the headline
    clusters (song means) and neither wins by having more columns: 384 lyrics dimensions beside
    160 audio ones would otherwise decide every split. Clips of songs without lyrics are left
    out (counted), as in the ``lyrics`` baseline.
    """
    a, t = raw.units(SEED_INDEPENDENT), lyrics.units(SEED_INDEPENDENT)
    both = np.isin(a.unit_id, t.unit_id)
    a = a.subset(both)
    t_pos = pd.Series(np.arange(len(t)), index=pd.Index(t.unit_id)).reindex(a.unit_id).to_numpy()
    text = t.x[t_pos]
    songs_a = song_means(a)
    train = songs_a.split == "train"
    if train.sum() < 2:
        raise ValueError("raw_lyrics baseline: fewer than two training songs with lyrics")
    song_text = song_means(Units(a.unit_id, a.song_id, a.split, text)).x  # a song's clips share it
    n = int(min(n_components, song_text.shape[1], train.sum() - 1))
    pca = PCA(n_components=n, svd_solver="full").fit(song_text[train])
    clip_pcs = pca.transform(text)
    song_pcs = pca.transform(song_text)
    blocks = []
    for clip_x, song_x in ((a.x.astype(np.float64), songs_a.x.astype(np.float64)), (clip_pcs, song_pcs)):
        centre = song_x[train].mean(axis=0)
        scale = float(np.sqrt(((song_x[train] - centre) ** 2).sum(axis=1).mean()))
        blocks.append((clip_x - centre) / (scale if scale > 0 else 1.0))
    x = np.hstack(blocks).astype(np.float32)
    counts = dict(raw.counts)
    counts["clips_of_songs_without_lyrics"] = int((~both).sum())
    counts["clips"] = len(a)
    explained = float(pca.explained_variance_ratio_.sum())
    return Representation(
        "raw_lyrics",
        "baseline",
        f"{raw.description} beside the lyrics embedding's {n} principal components (fit on train "
        f"songs, {explained:.1%} of their variance), each block scaled to unit total variance of "
        "the train songs' mean vectors",
        list(raw.columns) + [f"lyrics_pc_{i:02d}" for i in range(n)],
        {SEED_INDEPENDENT: Units(a.unit_id, a.song_id, a.split, x)},
        counts=counts,
        modality="audio+lyrics",
    )


def song_level_representation(
    name: str,
    clips: pd.DataFrame,
    song_ids: pd.Series,
    x: np.ndarray,
    columns: Sequence[str],
    description: str,
    modality: str,
) -> Representation:
    """A seed-independent baseline from one vector per song (rows of ``x`` keyed by ``song_ids``),
    given to each of the song's clips."""
    pos = pd.Series(np.arange(len(song_ids)), index=pd.Index(song_ids.astype(str)))
    if pos.index.has_duplicates:
        raise ValueError(f"{name}: duplicate song_id rows in the input")
    idx = pos.reindex(clips["song_id"].astype(str)).to_numpy()
    have = ~pd.isna(idx)
    sub = clips[have]
    units, counts = _align(name, sub, sub["segment_id"], x[idx[have].astype(int)], columns)
    counts["clips_of_songs_without_vector"] = int((~have).sum())
    return Representation(
        name,
        "baseline",
        description,
        list(columns),
        {SEED_INDEPENDENT: units},
        counts=counts,
        modality=modality,
        vector_level="song",
    )


def reduce_representation(rep: Representation, method: str, dim: int, seed: int = 0) -> Representation:
    """Optional pre-reduction before clustering, fit on training clips.

    ``none`` returns ``rep``; ``pca`` projects each seed's vectors to ``dim``
    components (no-op where the representation is already that small);
    ``umap`` uses ``umap-learn`` (a clear error says so if it is missing).
    """
    if method == "none" or rep.dim <= dim:
        return rep
    if method == "umap":
        try:
            import umap  # noqa: F401
        except ImportError:
            raise ValueError(
                "cluster.reduce: umap needs the umap-learn package, which is not installed; "
                "`pip install umap-learn` or set cluster.reduce to pca or none"
            ) from None
    out: dict[int, Units] = {}
    for s, u in rep.clips.items():
        train = u.split == "train"
        if method == "pca":
            model = PCA(n_components=dim, svd_solver="full").fit(u.x[train])
            z = model.transform(u.x)
        elif method == "umap":
            import umap

            with warnings.catch_warnings():
                # a fixed random_state makes UMAP single-threaded, which it announces on every call
                warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
                model = umap.UMAP(
                    n_components=dim, n_jobs=1, random_state=seed if s == SEED_INDEPENDENT else s
                )
                z = model.fit(u.x[train]).transform(u.x)
        else:
            raise ValueError(f"cluster.reduce: unknown method {method!r} (none, pca, umap)")
        out[s] = Units(u.unit_id, u.song_id, u.split, np.asarray(z, dtype=np.float32))
    return Representation(
        rep.name,
        rep.kind,
        f"{rep.description}; {method} to {dim} dims (fit on train clips)",
        [f"{method}_{i:02d}" for i in range(dim)],
        out,
        rep.conditioned_on,
        rep.own_clusters,
        rep.counts,
        rep.modality,
        rep.vector_level,
    )
