"""Build the report: load inputs, run each section, render the templates, write HTML, PNGs and PDF.

A section that fails stops the stage with a :class:`ReportError` naming the section; there is no
half report. The page is a pure function of the inputs and params (no time, host or path in it).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from musiclust.contracts.models import HISTORY_COLUMNS
from musiclust.fileio import atomic_write_bytes
from musiclust.params import ReportParams
from musiclust.reporting.cache import ArtefactCache
from musiclust.reporting.excerpts import ExcerptError
from musiclust.reporting.explore import VegaLibraries, section_data
from musiclust.reporting.inputs import ReportInputError, ReportInputs, ReportPaths, load_inputs
from musiclust.reporting.pdf import maybe_print_pdf
from musiclust.reporting.sections import SECTIONS, Ctx

log = logging.getLogger(__name__)

#: What a broken input raises inside a section (turned into one ReportError naming the section).
_SECTION_ERRORS = (
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    OSError,
    ReportInputError,
    ExcerptError,
    jinja2.TemplateError,  # e.g. a key the template shows is missing (StrictUndefined)
)


class ReportError(Exception):
    """A report section could not be built from its inputs (the message names the section)."""


def fmt_num(value: Any, digits: int = 3) -> str:
    """A score as text (``-`` for a missing or non-finite value); formatting only, no arithmetic."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    v = float(value)
    return "-" if not math.isfinite(v) else f"{v:.{digits}f}"


def fmt_interval(low: Any, high: Any, digits: int = 3) -> str:
    """``[low, high]`` as written by the evaluation; empty where it wrote no interval."""
    if fmt_num(low, digits) == "-" and fmt_num(high, digits) == "-":
        return ""
    return f"[{fmt_num(low, digits)}, {fmt_num(high, digits)}]"


def environment() -> jinja2.Environment:
    """The templates under ``reporting/templates`` with autoescaping and strict undefined names."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("musiclust.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = fmt_num
    env.filters["interval"] = fmt_interval
    return env


def build_sections(
    ctx: Ctx, env: jinja2.Environment, skip: Collection[str] = (), only: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """The sections rendered in page order (its data, then its template ``<anchor>.html.j2``);
    those in ``skip`` (or not in ``only``) are left out of the list.

    Raises :class:`ReportError` naming the first section whose inputs (or template) fail.
    """
    out = []
    for anchor, title, fn in SECTIONS:
        if anchor in skip or (only is not None and anchor not in only):
            continue
        try:
            data = fn(ctx)
            html = Markup(env.get_template(f"{anchor}.html.j2").render(d=data))
        except _SECTION_ERRORS as exc:
            raise ReportError(f"report section '{title}' ({anchor}): {type(exc).__name__}: {exc}") from exc
        out.append({"anchor": anchor, "title": title, "html": html})
        log.info("section %s done", anchor)
    return out


def training_history(inputs: ReportInputs) -> pd.DataFrame:
    """Every trained model's ``history.csv`` in one long table: ``model`` then its columns, models in
    name order (drawn by ``dvc plots`` with one line per model and revision, whatever the models are)."""
    frames = [
        rep.history.assign(model=name)[["model", *rep.history.columns]]
        for name, rep in sorted(inputs.reps.items())
        if rep.is_model and rep.history is not None and not rep.history.empty
    ]
    return (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", *HISTORY_COLUMNS])
    )


def render(
    env: jinja2.Environment,
    sections: Sequence[dict[str, Any]],
    params: ReportParams,
    label_columns: Sequence[str],
    figure_names: Sequence[str],
    summary: dict[str, Any],
) -> str:
    """The page as one string around the rendered sections (the summary section has checked ``summary``)."""
    return env.get_template("report.html.j2").render(
        sections=sections,
        params=params,
        label_columns=list(label_columns),
        figure_names=list(figure_names),
        interval=summary["interval"],
        n_test_songs=summary["n_test_songs"],
    )


def write_explorer(
    payload: dict[str, Any], vega: VegaLibraries, out_html: Path, title: str, subtitle: str
) -> Path:
    """The explorer alone as a self-contained page (``musiclust assign --explore``)."""
    text = (
        environment()
        .get_template("explore_page.html.j2")
        .render(d=section_data(payload, vega), title=title, subtitle=subtitle)
    )
    atomic_write_bytes(out_html, text.encode("utf-8"))
    log.info("wrote %s (%.0f kB)", out_html, len(text) / 1024)
    return out_html


def write_report(
    paths: ReportPaths,
    representations: Sequence[str],
    params: ReportParams,
    label_columns: Sequence[str],
    out_html: Path,
    figures_dir: Path,
    pdf: Path | None = None,
    history_csv: Path | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """Build the report from ``paths``; write ``out_html``, ``figures_dir/*.png`` and (with Chromium) ``pdf``.

    ``representations`` are the ``data/clusters/<rep>/`` folders drawn (params.yaml's models and
    baselines: a folder left from an earlier selection is not part of this run). ``history_csv``
    receives every model's training history in one table (:func:`training_history`), the data of
    the ``dvc plots`` loss curves. ``cache_dir``: figures and excerpts of earlier reports
    (:mod:`musiclust.reporting.cache`), so only what changed is drawn again; the output is the same.

    ``figures_dir`` is emptied of old PNGs first: outputs are rewritten whole. The PDF, when asked
    for, is a side file outside the stage's cached outputs: whether it can be printed depends on
    the machine (Chromium installed or not), and a cached output must not.
    """
    figures_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(figures_dir.glob("*.png")):
        old.unlink()
    inputs = load_inputs(paths, representations)
    if history_csv is not None:
        history_csv.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(history_csv, training_history(inputs).to_csv(index=False).encode("utf-8"))
    ctx = Ctx(inputs, params, tuple(label_columns), figures_dir, cache=ArtefactCache(cache_dir))
    env = environment()
    # the explorer (interactive, hidden in print) is built last, while Chromium prints the PDF from
    # the page without it: the two overlap instead of adding up
    sections = build_sections(ctx, env, skip=(EXPLORER,))
    with tempfile.TemporaryDirectory(prefix="musiclust-print-") as tmp, ThreadPoolExecutor(1) as printer:
        printing = None
        if pdf is not None:
            print_page = Path(tmp) / "report.html"
            print_sections = _with_section(sections, _explorer_for_print(env))
            print_text = render(env, print_sections, params, label_columns, ctx.figure_names, inputs.summary)
            print_page.write_text(print_text, encoding="utf-8")
            printing = printer.submit(maybe_print_pdf, print_page, pdf)
        try:
            sections = _with_section(sections, *build_sections(ctx, env, only=(EXPLORER,)))
            text = render(env, sections, params, label_columns, ctx.figure_names, inputs.summary)
            atomic_write_bytes(out_html, text.encode("utf-8"))
        except BaseException:  # no PDF of a report that was not written
            if printing is not None:
                printing.exception()  # let Chromium finish (its outcome no longer matters)
                pdf.unlink(missing_ok=True)  # type: ignore[union-attr]
            raise
        ctx.cache.prune()
        log.info(
            "wrote %s (%.0f kB, %d figures, %d excerpts)",
            out_html,
            len(text) / 1024,
            len(ctx.figure_names),
            len(ctx.excerpts),
        )
        if printing is not None:
            printing.result()
    return out_html


#: The anchor of the interactive explorer section (built last; the PDF shows a note in its place).
EXPLORER = "explore"


def _explorer_for_print(env: jinja2.Environment) -> dict[str, Any]:
    """The explorer section of the page the PDF is printed from: the part of it print shows."""
    title = next(t for a, t, _ in SECTIONS if a == EXPLORER)
    return {
        "anchor": EXPLORER,
        "title": title,
        "html": Markup(env.get_template("explore_print.html.j2").render()),
    }


def _with_section(sections: Sequence[dict[str, Any]], *extra: dict[str, Any]) -> list[dict[str, Any]]:
    """``sections`` plus ``extra``, in page order."""
    order = [a for a, _, _ in SECTIONS]
    return sorted([*sections, *extra], key=lambda s: order.index(s["anchor"]))
