"""An offline HTML template for ``dvc plots show`` / ``dvc plots diff``.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so its plots are blank
without network. ``build_template`` inlines the three minified libraries (taken from npm
tarballs, ``npm pack vega@5 vega-lite@5 vega-embed@6``) into a page that DVC fills through its
``{plot_divs}`` placeholder. The page deliberately has no ``{scripts}`` placeholder: that is
where DVC would insert its CDN ``<script src>`` tags. ``.dvc/config`` points
``plots.html_template`` at the committed result (``.dvc/plots/offline.html``).
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

# npm package -> the UMD build that defines the global the next one needs (vega, vegaLite, vegaEmbed)
BUILDS = {
    "vega": "package/build/vega.min.js",
    "vega-lite": "package/build/vega-lite.min.js",
    "vega-embed": "package/build/vega-embed.min.js",
}
ORDER = ("vega", "vega-lite", "vega-embed")  # load order: each needs the globals of the ones before


@dataclass(frozen=True)
class VendoredScript:
    """One minified library and where it came from."""

    name: str
    version: str
    license: str  # SPDX id from package.json
    license_text: str  # the package's LICENSE file ("" when the tarball has none)
    js: str


def read_npm_tarball(path: str | Path) -> VendoredScript:
    """Read the minified UMD build, version and licence out of an ``npm pack`` tarball."""
    path = Path(path)
    with tarfile.open(path, "r:gz") as tar:
        names = set(tar.getnames())
        if "package/package.json" not in names:
            raise ValueError(f"{path}: not an npm package tarball (no package/package.json)")
        meta = json.loads(tar.extractfile("package/package.json").read().decode("utf-8"))
        name = meta.get("name")
        if name not in BUILDS:
            raise ValueError(f"{path}: package {name!r} is not one of {sorted(BUILDS)}")
        if BUILDS[name] not in names:
            raise ValueError(f"{path}: {name} {meta.get('version')} has no {BUILDS[name]}")
        js = tar.extractfile(BUILDS[name]).read().decode("utf-8")
        lic = tar.extractfile("package/LICENSE").read().decode("utf-8") if "package/LICENSE" in names else ""
    return VendoredScript(
        name=name,
        version=str(meta["version"]),
        license=str(meta.get("license", "")),
        license_text=lic.strip(),
        js=js,
    )


def build_template(scripts: list[VendoredScript]) -> str:
    """The HTML template: the libraries inline in load order, DVC's plot placeholder in the body."""
    by_name = {s.name: s for s in scripts}
    missing = [n for n in ORDER if n not in by_name]
    if missing:
        raise ValueError(f"offline plots template needs {list(ORDER)}; missing {missing}")
    for s in scripts:
        # inline JS must not close its own <script> element, nor contain text DVC would substitute
        for bad in ("</script", "{plot_divs}", "{scripts}", "{refresh_tag}"):
            if bad in s.js.lower():
                raise ValueError(f"{s.name} {s.version}: minified build contains {bad!r}; cannot inline it")
    notice = "\n".join(
        f"  {n} {by_name[n].version} ({by_name[n].license}), {BUILDS[n].removeprefix('package/')}"
        for n in ORDER
    )
    licences = "\n\n".join(
        f"{n}:\n{by_name[n].license_text}" for n in ORDER if by_name[n].license_text
    ).replace("--", "- -")
    head = (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n{refresh_tag}\n<title>DVC Plot</title>\n'
        "<!--\nmusiclust offline template for dvc plots show / dvc plots diff: no network needed.\n"
        "Inlined from the npm registry:\n" + notice + "\n"
        "All three are BSD-3-Clause (University of Washington Interactive Data Lab); the vega bundle\n"
        "includes d3 modules (ISC), the vega-embed bundle fast-json-patch (MIT).\n"
        "Rebuild with: make plots-template\n\n" + licences + "\n-->\n"
        "<style>\ntable {\n    border-spacing: 15px;\n}\n</style>\n"
    )
    body = "".join(f'<script type="text/javascript">\n{by_name[n].js.strip()}\n</script>\n' for n in ORDER)
    return head + body + "</head>\n<body>\n{plot_divs}\n</body>\n</html>\n"


def write_template(tarballs: list[str | Path], out: str | Path) -> Path:
    """Build the template from npm tarballs and write it to ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_template([read_npm_tarball(t) for t in tarballs]), encoding="utf-8")
    return out
