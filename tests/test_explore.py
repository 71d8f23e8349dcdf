"""The report's explorer: its data (what the cluster stage wrote, aligned per song), its audio
budget, and the page itself in headless Chromium (renders every song, switches representation,
plays a clicked song, no console error, no network request).

The inputs are the report test's fixture (tests/test_report.py): 12 songs, vae / pca / raw
applicable, lyrics not, and one song (raw's language cluster of s03) put with the other language.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from musiclust.params import ReportParams
from musiclust.reporting.excerpts import encode_opus
from musiclust.reporting.explore import excerpt_seconds, majority_labels, page_json, read_vega
from musiclust.reporting.inputs import ReportInputError
from musiclust.reporting.pdf import find_chromium
from test_report import MISPLACED, REPO, make_inputs, run_stage

N_SONGS = 12
TEST_SONGS = 4  # the fixture's split: songs 2, 5, 8, 11


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Path]]:
    paths = make_inputs(tmp_path_factory.mktemp("explore"))
    paths.pop("pdf")
    return run_stage(paths), paths


def page_data(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="explore-data">(.*?)</script>', text, re.S)
    assert m, "no explorer data in the page"
    return json.loads(m.group(1))


# ----------------------------------------------------------------------------- data


def test_every_song_of_every_map_is_in_the_explorer_with_its_clusters(report) -> None:
    text, paths = report
    d = page_data(text)
    ids = d["songs"]["id"]
    assert ids == [f"s{k:02d}" for k in range(N_SONGS)]
    assert sum(s == "test" for s in d["songs"]["split"]) == TEST_SONGS
    assert d["songs"]["has_lyrics"] == [False] * N_SONGS  # songs.parquet: no fixture song has lyrics
    assert [r["name"] for r in d["reps"]] == ["pca", "raw", "vae"]  # lyrics: not applicable
    assert d["not_applicable"] == [["lyrics", "no song has lyrics"]]
    for rep in d["reps"]:
        maps = pd.read_parquet(paths["clusters"] / rep["name"] / "maps.parquet")
        first = maps[maps["seed"] == maps["seed"].min()]
        assert rep["seed"] == int(first["seed"].iloc[0])
        for method in ("pca", "tsne"):
            stored = first[first["method"] == method].set_index("song_id").reindex(ids)
            assert np.allclose(rep["maps"][method]["x"], stored["x"], atol=1e-4)
            assert np.allclose(rep["maps"][method]["y"], stored["y"], atol=1e-4)
        asg = pd.read_parquet(paths["clusters"] / rep["name"] / "assignments.parquet")
        # baselines are mapped once (seed -1) and clustered with seeds: the first clustering seed is shown
        assert rep["cluster_seed"] == int(asg["seed"].min()) == (0 if rep["name"] != "vae" else rep["seed"])
        for lab in ("language", "genre"):
            sel = asg[(asg["for_labels"] == lab) & (asg["seed"] == rep["cluster_seed"])].set_index("song_id")
            assert rep["clusters"][lab]["cluster"] == sel["cluster"].reindex(ids).astype(int).tolist()
    assert rep["maps"]["tsne"]["note"] is None
    raw = next(r for r in d["reps"] if r["name"] == "raw")
    assert raw["maps"]["tsne"]["note"] == "all points identical"


def test_only_the_misplaced_song_disagrees_with_its_clusters_majority(report) -> None:
    d = page_data(report[0])
    ids = d["songs"]["id"]
    for rep in d["reps"]:
        for lab, cl in rep["clusters"].items():
            flagged = [ids[i] for i, dis in enumerate(cl["disagree"]) if dis]
            expected = [MISPLACED[2]] if (rep["name"], lab) == MISPLACED[:2] else []
            assert flagged == expected, (rep["name"], lab)
    raw = next(r for r in d["reps"] if r["name"] == "raw")["clusters"]["language"]
    assert raw["majority"] == {"0": "en", "1": "bn"} and raw["k"] == 2


def test_distances_are_to_the_mean_of_the_clusters_songs(report) -> None:
    d = page_data(report[0])
    vae = next(r for r in d["reps"] if r["name"] == "vae")["clusters"]["genre"]
    # fixture: a genre's 6 songs sit at its centre + (0, 1, -1, 2, -2, 0) on the second axis
    assert vae["distance"][:6] == [0.0, 1.0, 1.0, 2.0, 2.0, 0.0]


def test_every_song_has_a_playable_excerpt_of_the_chosen_length(report) -> None:
    d = page_data(report[0])
    assert d["excerpt_s"] == 1.5 and d["budget_note"] is None and d["no_excerpt"] == []
    for uri in d["songs"]["audio"]:
        assert uri.startswith("data:audio/ogg;base64,")
        y, sr = sf.read(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert sr == 24000 and abs(len(y) / sr - 1.5) < 0.05


def test_the_explorer_is_byte_identical_run_to_run(report, tmp_path: Path) -> None:
    text, paths = report
    again = run_stage(paths, out=tmp_path / "index.html", figures=tmp_path / "figures")
    assert again == text


def test_a_missing_vega_template_is_named(tmp_path: Path) -> None:
    paths = make_inputs(tmp_path)
    paths.pop("pdf")
    with pytest.raises(
        Exception, match=r"nowhere\.html: cannot read the offline vega template.*plots-template"
    ):
        run_stage(paths, vega=tmp_path / "nowhere.html")
    bad = tmp_path / "bad.html"
    bad.write_text('<script type="text/javascript">\nvar x=1\n</script>\n', encoding="utf-8")
    with pytest.raises(ReportInputError, match=r"bad\.html: expected 3 inline scripts"):
        read_vega(bad)


def test_the_committed_template_gives_the_three_libraries_in_order() -> None:
    vega = read_vega(REPO / ".dvc" / "plots" / "offline.html")
    assert len(vega.scripts) == 3 and "BSD-3-Clause" in vega.notice and "--" not in vega.notice


# ----------------------------------------------------------------------------- helpers


def test_page_json_cannot_end_its_script_element() -> None:
    evil = {"title": "</script><script>alert(1)</script> & <!-- \u2028"}
    text = str(page_json(evil))
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == evil


def test_majority_labels_ignore_unknown_and_break_ties_stably() -> None:
    clusters = pd.Series([0, 0, 0, 1, 1, 2], index=list("abcdef"))
    labels = pd.Series(["en", "bn", None, "bn", "en", None], index=list("abcdef"))
    assert majority_labels(clusters, labels) == {0: "bn", 1: "bn", 2: None}  # ties: natural order


def test_excerpts_shorten_to_fit_the_budget() -> None:
    p = ReportParams(excerpt_s=4.0, explore_kbps=24.0, explore_audio_mb=20.0)
    assert excerpt_seconds(120, p) == (4.0, None)
    assert excerpt_seconds(1000, p) == (4.0, None)  # 1,000 songs x 4 s at 24 kbps: ~17 MB
    s, note = excerpt_seconds(3000, p)
    assert 1.0 < s < 4.0 and note is None
    # the estimate holds: 3,000 such excerpts (base64) stay within 20 MB
    assert 3000 * (1000 + 24 * 125 * s) * 4 / 3 <= 20e6
    assert excerpt_seconds(100_000, p) == (
        1.0,
        "100000 excerpts of 1 s at 24 kbps exceed report.explore_audio_mb = 20",
    )


def test_bad_explorer_params_are_named() -> None:
    from musiclust.params import ParamsError, parse_params

    with pytest.raises(ParamsError, match=r"report\.explore_kbps must be in \[6, 256\], got 4"):
        parse_params({"report": {"explore_kbps": 4}})
    with pytest.raises(ParamsError, match=r"report\.explore_audio_mb must be > 0, got 0"):
        parse_params({"report": {"explore_audio_mb": 0}})


def test_opus_excerpts_keep_their_bitrate_and_decode() -> None:
    rng = np.random.default_rng(0)
    y = (0.3 * rng.normal(size=22050 * 10)).astype(np.float32)  # noise: the codec spends every bit
    for kbps in (16, 24, 48):
        a = encode_opus(y, 22050, kbps)
        assert a == encode_opus(y, 22050, kbps)  # deterministic (fixed Ogg serial)
        assert abs(len(a) * 8 / 10 / 1000 - kbps) < 0.25 * kbps, (kbps, len(a))
    z, sr = sf.read(io.BytesIO(a))
    assert sr == 24000 and abs(len(z) / sr - 10.0) < 0.05


# ----------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        pytest.skip("no chromium / chromium-browser / google-chrome on PATH (CI installs Debian's chromium)")
    from tests.cdp import Browser

    with Browser(exe, width=1280, height=1000) as b:
        yield b


def _wait_render(b, n: int) -> None:
    b.wait_for(f"Number(document.getElementById('explorer').dataset.rendered || 0) >= {n}")


def _choose(b, select: str, value: str) -> None:
    b.evaluate(
        f"(() => {{ const s = document.getElementById({json.dumps(select)}); s.value = {json.dumps(value)};"
        " s.dispatchEvent(new Event('change')); })()"
    )


#: each drawn song and where its point is in the viewport: the canvas corner, vega's padding, the
#: room the axes take left of and above the plot (the scenegraph's bounds), then the scales
POINTS_JS = """(() => {
  const view = window.musiclustExplorer.view();
  const box = view.container().querySelector('canvas').getBoundingClientRect();
  const bounds = view.scenegraph().root.bounds, pad = view.padding();
  const sx = view.scale('x'), sy = view.scale('y');
  return window.musiclustExplorer.rows().map(r => ({id: r.id, role: r.role, x: r.x, y: r.y,
    cx: box.left + pad.left - bounds.x1 + sx(r.x), cy: box.top + pad.top - bounds.y1 + sy(r.y)}));
})()"""


def test_the_explorer_works_in_a_browser(report, browser) -> None:
    text, paths = report
    b = browser
    b.open(paths["out"].resolve().as_uri())
    _wait_render(b, 1)
    # it opens on the first label's winner (language: pca), t-SNE, coloured by that label
    assert b.evaluate("document.getElementById('explorer').dataset.state") == "pca|tsne|language|label|false"
    first = b.evaluate(POINTS_JS)
    assert sorted(p["id"] for p in first) == [f"s{k:02d}" for k in range(N_SONGS)]  # every song drawn
    assert sum(p["role"] == "test song" for p in first) == TEST_SONGS
    # test songs are drawn as diamonds, the others as circles (the scenegraph vega rendered)
    shapes = b.evaluate(
        "(() => { const out = {}; const walk = (n) => { if (n.items) n.items.forEach(walk);"
        " if (n.datum && n.datum.key && n.shape) out[n.datum.id] = n.shape; };"
        " walk(window.musiclustExplorer.view().scenegraph().root); return out; })()"
    )
    assert {shapes[p["id"]] for p in first if p["role"] == "test song"} == {"diamond"}
    assert {shapes[p["id"]] for p in first if p["role"] != "test song"} == {"circle"}

    # switching the representation moves the points
    _choose(b, "explore-rep", "vae")
    _wait_render(b, 2)
    moved = {p["id"]: (p["x"], p["y"]) for p in b.evaluate(POINTS_JS)}
    assert len(moved) == N_SONGS
    assert sum(moved[p["id"]] != (p["x"], p["y"]) for p in first) >= N_SONGS - 1

    # the wheel zooms in (the x scale's domain narrows)
    b.evaluate("document.getElementById('explore-chart').scrollIntoView()")
    pts = b.evaluate(POINTS_JS)
    domain = "window.musiclustExplorer.view().scale('x').domain()"
    before = b.evaluate(domain)
    cx, cy = float(np.mean([p["cx"] for p in pts])), float(np.mean([p["cy"] for p in pts]))
    b.hover(cx, cy)
    b.wheel(cx, cy, -300)
    after = b.wait_for(
        f"(() => {{ const d = {domain}; return d[1] - d[0] < {before[1] - before[0]} ? d : null; }})()"
    )
    assert after[1] - after[0] < 0.9 * (before[1] - before[0])
    b.evaluate("window.musiclustExplorer.render()")  # back to the whole map
    _wait_render(b, 3)

    # hover shows the song; a click plays its excerpt
    pts = b.evaluate(POINTS_JS)
    target = max(
        pts, key=lambda p: min(np.hypot(p["cx"] - q["cx"], p["cy"] - q["cy"]) for q in pts if q is not p)
    )
    b.hover(target["cx"], target["cy"])
    tip = b.wait_for(
        "!document.getElementById('explore-tip').hidden && document.getElementById('explore-tip').innerText"
    )
    title = next(
        t
        for t, sid in zip(page_data(text)["songs"]["title"], page_data(text)["songs"]["id"])
        if sid == target["id"]
    )
    assert title in tip and "distance to cluster centre" in tip and "split" in tip and "lyrics: none" in tip
    b.click(target["cx"], target["cy"])
    assert b.wait_for("document.getElementById('explore-player').dataset.song") == target["id"]
    b.wait_for(
        "(() => { const a = document.getElementById('explore-player'); return !a.paused && a.currentTime > 0; })()"
    )

    # "only songs that disagree": raw's language clusters put exactly one song with the other language
    _choose(b, "explore-rep", "raw")
    _wait_render(b, 4)
    b.evaluate("document.getElementById('explore-only').click()")
    _wait_render(b, 5)
    assert [p["id"] for p in b.evaluate(POINTS_JS)] == [MISPLACED[2]]
    assert b.errors == [], b.errors
    assert all(u.startswith(("file:", "data:", "about:")) for u in b.requests), b.requests
