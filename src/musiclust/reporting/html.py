"""Tiny HTML helpers for one self-contained page: escaped text, tables, inline images and audio.

Nothing here ever emits a network reference: images and audio are ``data:`` URIs, the style
sheet is inline, and the page declares an empty inline favicon so browsers do not ask for one.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from musiclust.reporting.excerpts import data_uri

CSS = """
:root { --fg:#1b1b1b; --muted:#5a5a5a; --line:#d9d9d9; --accent:#0072B2; --bg:#ffffff; --soft:#f4f6f8;
        --warn:#8a4b00; --warnbg:#fff4e0; --good:#00704f; --bad:#a33b00; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans Bengali",
       sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 0 24px 48px; }
header.top { background: var(--soft); border-bottom: 1px solid var(--line); padding: 18px 24px; }
header.top h1 { margin: 0 auto; max-width: 1132px; font-size: 24px; }
header.top p { margin: 4px auto 0; max-width: 1132px; color: var(--muted); }
nav.toc { margin: 16px 0; padding: 10px 14px; background: var(--soft); border-radius: 6px; }
nav.toc a { margin-right: 14px; color: var(--accent); text-decoration: none; white-space: nowrap; }
h2 { margin-top: 36px; border-bottom: 2px solid var(--accent); padding-bottom: 4px; }
h3 { margin-top: 24px; }
p.note, figcaption, .caption { color: var(--muted); font-size: 13.5px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { background: var(--soft); border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.card b { display: block; font-size: 22px; }
.card span { color: var(--muted); font-size: 12.5px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--soft); position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { background: #e8f3fb; font-weight: 600; }
.up { color: var(--good); font-weight: 700; } .down { color: var(--bad); font-weight: 700; }
.ns { color: var(--muted); }
.warn { background: var(--warnbg); border-left: 4px solid #E69F00; padding: 8px 14px; margin: 12px 0;
        color: var(--warn); }
.warn ul { margin: 4px 0; padding-left: 20px; }
.ok { background: #e9f6f1; border-left: 4px solid #009E73; padding: 8px 14px; margin: 12px 0; }
figure { margin: 14px 0 22px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
.songs { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 10px; }
.song { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.song .t { font-weight: 600; } .song .m { color: var(--muted); font-size: 12.5px; }
.song audio { width: 100%; height: 34px; margin-top: 6px; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--accent); }
pre { background: var(--soft); padding: 10px; overflow-x: auto; font-size: 12px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 0 16px; }
.grid2 figure { margin: 8px 0; }
.scroll { max-height: 480px; overflow: auto; border: 1px solid var(--line); }
footer { margin-top: 40px; border-top: 1px solid var(--line); padding-top: 12px; color: var(--muted);
         font-size: 13px; }
code { font-size: 12.5px; background: var(--soft); padding: 0 3px; border-radius: 3px; }
"""


def esc(text: object) -> str:
    """HTML-escape any value (None becomes an empty string)."""
    return "" if text is None else html.escape(str(text), quote=True)


def table(header: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[bool] | None = None,
          row_classes: Sequence[str] | None = None, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (for pre-built markup such as marks)."""
    numeric = list(numeric) if numeric is not None else [False] * len(header)
    out = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in header), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = row_classes[i] if row_classes is not None and i < len(row_classes) else ""
        out.append(f'<tr class="{esc(cls)}">' if cls else "<tr>")
        for j, cell in enumerate(row):
            text = str(cell) if raw else esc(cell)
            out.append(f'<td class="num">{text}</td>' if j < len(numeric) and numeric[j] else f"<td>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def image(png: bytes, alt: str, caption: str = "") -> str:
    """A figure with an inline PNG."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(png, "image/png")}" alt="{esc(alt)}">{cap}</figure>'


def audio(ogg: bytes, label: str) -> str:
    """An inline Ogg/Vorbis player (played only when the reader presses play)."""
    return (f'<audio controls preload="metadata" aria-label="{esc(label)}">'
            f'<source src="{data_uri(ogg, "audio/ogg")}" type="audio/ogg"></audio>')


def page(title: str, subtitle: str, toc: Sequence[tuple[str, str]], body: str, footer: str) -> str:
    """The whole document."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in toc)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header class="top"><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><main>'
        f'<nav class="toc">{nav}</nav>{body}<footer>{footer}</footer></main></body></html>\n'
    )
