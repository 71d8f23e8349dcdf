"""The offline ``dvc plots`` template: committed, configured, self-contained, and it renders."""

from __future__ import annotations

import configparser
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from musiclust.compare.plots_template import build_template, read_npm_tarball

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEMPLATE = REPO / ".dvc" / "plots" / "offline.html"
SCRIPT_SRC = re.compile(r"<script[^>]*\ssrc\s*=", re.IGNORECASE)
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def test_dvc_config_points_plots_at_the_committed_offline_template():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".dvc" / "config")
    rel = cfg["plots"]["html_template"]  # relative to .dvc/, as DVC resolves it
    assert (REPO / ".dvc" / rel).resolve() == TEMPLATE.resolve()
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(TEMPLATE)], cwd=REPO, capture_output=True
    )
    assert tracked.returncode == 0, "the offline template is not tracked by git"


def test_committed_template_inlines_vega_and_keeps_dvc_placeholder():
    text = TEMPLATE.read_text(encoding="utf-8")
    assert "{plot_divs}" in text
    assert "{scripts}" not in text  # where DVC would put its CDN <script src> tags
    assert not SCRIPT_SRC.search(text) and not EXTERNAL.search(text)
    assert len(re.findall(r"<script\b", text)) == 3
    for lib in ("vega ", "vega-lite ", "vega-embed "):
        assert re.search(rf"\b{lib}\d+\.\d+\.\d+ \(BSD-3-Clause\)", text), lib
    size = TEMPLATE.stat().st_size
    assert 500_000 < size < 2_000_000, f"{size} bytes"


def _tarball(dirpath: Path, name: str, version: str, js: str, licence: str | None = "BSD text") -> Path:
    path = dirpath / f"{name}-{version}.tgz"
    files = {
        "package/package.json": json.dumps({"name": name, "version": version, "license": "BSD-3-Clause"}),
        f"package/build/{name}.min.js": js,
    }
    if licence is not None:
        files["package/LICENSE"] = licence
    with tarfile.open(path, "w:gz") as tar:
        for member, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_build_template_orders_libraries_and_rejects_what_cannot_be_inlined(tmp_path):
    libs = [
        read_npm_tarball(_tarball(tmp_path, n, "1.2.3", f"var {n.replace('-', '_')}=1;"))
        for n in ("vega-embed", "vega", "vega-lite")
    ]
    text = build_template(libs)
    assert text.index("var vega=1") < text.index("var vega_lite=1") < text.index("var vega_embed=1")
    assert "{plot_divs}" in text and not SCRIPT_SRC.search(text)
    with pytest.raises(ValueError, match=r"missing \['vega-embed'\]"):
        build_template(libs[1:])
    (tmp_path / "bad").mkdir()
    bad = read_npm_tarball(_tarball(tmp_path / "bad", "vega", "9.9.9", "x='</SCRIPT>'"))
    with pytest.raises(ValueError, match="vega 9.9.9: minified build contains '</script'"):
        build_template([bad, *libs[1:], libs[0]])
    with pytest.raises(ValueError, match="package 'd3' is not one of"):
        read_npm_tarball(_tarball(tmp_path, "d3", "7.0.0", ""))


@pytest.mark.slow
def test_dvc_plots_show_renders_offline(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    root = tmp_path / "plots"
    (root / ".dvc").mkdir(parents=True)

    def run(*cmd):
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}{proc.stderr}"

    run("git", "init", "-q")
    run("dvc", "init", "-q", "-f")
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")
    run("dvc", "config", "plots.html_template", "plots/offline.html")
    (root / "loss.csv").write_text("epoch,loss\n0,1.0\n1,0.6\n2,0.4\n3,0.35\n")
    (root / "dvc.yaml").write_text("plots:\n  - loss.csv:\n      x: epoch\n      y: loss\n")
    run("dvc", "plots", "show", "-o", "out")
    html = (root / "out" / "index.html").read_text(encoding="utf-8")
    assert not SCRIPT_SRC.search(html) and not EXTERNAL.search(html)
    assert "cdn.jsdelivr.net" not in html
    assert "vegaEmbed('#" in html and '"loss"' in html

    # In a browser without network the chart must be drawn (needs chromium and `unshare -n`).
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium or not shutil.which("unshare"):
        pytest.skip("chromium or unshare is absent: rendered HTML checked, drawing not")
    shot = tmp_path / "shot.png"
    cmd = [
        "unshare",
        "-n",
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=5000",
        "--window-size=700,450",
        f"--screenshot={shot}",
        (root / "out" / "index.html").as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip(f"cannot take the network away here: {proc.stderr.strip()[:200]}")
    assert shot.is_file(), proc.stderr[-2000:]
    from matplotlib.image import imread

    img = imread(shot)[..., :3]
    drawn = (img < 0.9).any(axis=-1).mean()
    assert drawn > 0.005, f"only {drawn:.2%} of the screenshot is not white: the chart did not render"
