"""One look for every figure: headless matplotlib, a colour-blind-safe palette, PNG bytes.

The palette is Okabe & Ito's (2008) eight colours, reordered so the first few are the most
distinct on white (yellow last). Categories beyond eight reuse colours with a different marker,
so no two categories ever look the same.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers or in DVC stages

import matplotlib.pyplot as plt  # noqa: E402

#: Okabe-Ito colours, most distinguishable first.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow (weak on white, so last)
)
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")
#: Perceptually uniform and colour-blind-safe map for heatmaps.
SEQUENTIAL_CMAP = "viridis"
DPI = 100

_RC = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "figure.constrained_layout.use": True,
}


def apply_style() -> None:
    """Set the shared rcParams (idempotent)."""
    plt.rcParams.update(_RC)
    plt.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=list(OKABE_ITO))


def category_styles(categories: Sequence[object]) -> dict[object, tuple[str, str]]:
    """Map each category to a ``(colour, marker)`` pair, stable in the given order.

    The first eight get distinct colours with circles; later ones cycle colours with other
    markers so scatter plots stay readable without relying on colour alone.
    """
    out: dict[object, tuple[str, str]] = {}
    for i, cat in enumerate(categories):
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        marker = MARKERS[(i // len(OKABE_ITO)) % len(MARKERS)]
        out[cat] = (colour, marker)
    return out


def fig_to_png(fig: matplotlib.figure.Figure) -> bytes:
    """Render a figure to PNG bytes and close it (no timestamps, so output is reproducible)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
