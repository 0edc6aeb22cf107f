"""Themes are data: one dict per theme, read by the DOT and HTML exporters alike.

Fonts are named explicitly (DejaVu Sans ships with Graphviz's Debian package and covers ∂ σ ² ᵀ θ ŷ);
a generic "Helvetica" is substituted by another font whose widths differ, and boxes stop fitting text.
"""

from __future__ import annotations

from cgtools.errors import CgError, did_you_mean

FONT = "DejaVu Sans"
# matplotlib's plasma at ten even steps: perceptually uniform, luminance rising from blue through red to yellow.
# Colouring by magnitude (colours.py) uses the part of it that reads on each theme's background; paper's
# scale runs from light grey to black, so that it survives greyscale printing.
PLASMA = ("#0d0887", "#46039f", "#7201a8", "#9c179e", "#bd3786", "#d8576b", "#ed7953", "#fb9f3a", "#fdca26",
          "#f0f921")

THEMES: dict[str, dict] = {
    # large and high-contrast, for a projector
    "slide": {
        "font": FONT, "fontsize": 18, "small": 12, "symbol_size": 24, "background": "#ffffff", "text": "#111827",
        "muted": "#6b7280", "line": "#374151", "penwidth": 1.6,
        "fill": {"input": "#dbeafe", "param": "#fde68a", "constant": "#f3f4f6", "op": "#ffffff", "output": "#ffffff"},
        "value": "#1d4ed8", "grad": "#c2410c", "grad_font": "", "accent": "#7c3aed", "alert": "#be123c",
        "nodesep": 0.5, "ranksep": 0.9, "scale": PLASMA[:8], "unmeasured": "#c0c4cc",
    },
    # for print: greyscale-safe, gradients told apart by italics as well as by colour
    "paper": {
        "font": FONT, "fontsize": 11, "small": 8, "symbol_size": 14, "background": "#ffffff", "text": "#000000",
        "muted": "#555555", "line": "#333333", "penwidth": 0.8,
        "fill": {"input": "#eeeeee", "param": "#d9d9d9", "constant": "#ffffff", "op": "#ffffff", "output": "#ffffff"},
        "value": "#000000", "grad": "#444444", "grad_font": "I", "accent": "#000000", "alert": "#000000",
        "nodesep": 0.3, "ranksep": 0.5, "scale": ("#cccccc", "#000000"), "unmeasured": "#999999",
    },
    "dark": {
        "font": FONT, "fontsize": 16, "small": 11, "symbol_size": 22, "background": "#111827", "text": "#f9fafb",
        "muted": "#9ca3af", "line": "#9ca3af", "penwidth": 1.4,
        "fill": {"input": "#1e3a8a", "param": "#78350f", "constant": "#374151", "op": "#1f2937", "output": "#1f2937"},
        "value": "#93c5fd", "grad": "#fdba74", "grad_font": "", "accent": "#c4b5fd", "alert": "#f87171",
        "nodesep": 0.5, "ranksep": 0.9, "scale": PLASMA[2:], "unmeasured": "#4b5563",
    },
}


def theme(name: str) -> dict:
    try:
        return THEMES[name]
    except KeyError:
        raise CgError(f"unknown theme {name!r}{did_you_mean(name, THEMES)}; expected one of {', '.join(THEMES)}") \
            from None
