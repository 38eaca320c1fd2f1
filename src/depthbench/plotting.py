"""The one matplotlib set-up: ``pyplot()`` on the non-interactive Agg backend.

Every figure (diagnostics, the attention heat map, reports) goes through it, so no display is
needed and the backend is chosen in one place. It imports no torch (the report path has none).
"""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (PNG files, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def integer_ticks(ax, axis: str = "x") -> None:
    """Ticks on whole numbers only along ``axis`` ("x" or "y"): layer indices, steps, epochs."""
    from matplotlib.ticker import MaxNLocator

    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))


# ---- the palette: one colour per family, in every figure ------------------------------------
# Okabe & Ito (2008) colours first, Paul Tol's "muted" scheme for the rest: both stay apart for
# the common colour-vision deficiencies. A family keeps its colour in every figure (the lesson's
# and the report's), so plain is vermillion and residual is blue wherever a reader meets them.
FAMILIES: dict[str, str] = {
    "plain": "#D55E00",  # vermillion
    "residual": "#0072B2",  # blue
    "blocks deleted": "#88CCEE",  # a residual net with its blocks deleted: pale blue
    "batchnorm": "#009E73",  # bluish green
    "relu": "#E69F00",  # orange: ReLU + He init
    "sigmoid": "#CC79A7",  # reddish purple
    "shallow": "#999933",  # olive: depth 1, the wide shallow net, the depth-1 twin
    "deep": "#332288",  # indigo
    "pretrained": "#882255",  # wine
    "scratch": "#DDCC77",  # sand
    "raw pixels": "#555555",  # dark grey: a baseline on the input, not a network
    "referent": "#117733",  # green
    "other noun": "#CC6677",  # rose
    "layer probe": "#AA4499",  # purple
}
# label words -> family, tried in this order (the first match wins): "sigmoid + skip
# connections" is residual, "plain sigmoid + Xavier" is sigmoid, "probe on the raw input" raw
_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("blocks deleted", ("blocks deleted", "block deleted")),
    ("raw pixels", ("raw",)),
    ("residual", ("residual", "skip", "shortcut")),
    ("batchnorm", ("batch norm", "batchnorm", "batch-norm")),
    ("relu", ("relu", "he init")),
    ("sigmoid", ("sigmoid",)),
    ("plain", ("plain",)),
    ("shallow", ("depth 1", "depth-1", "twin", "shallow", "wide")),
    ("deep", ("deep",)),
    ("pretrained", ("pretrained", "frozen", "imagenet", "linear probe")),
    ("scratch", ("scratch",)),
    ("referent", ("referent",)),
    ("other noun", ("other noun",)),
    ("layer probe", ("probe on the layer", "layer probe")),
)
# a label no family claims: one of these, always the same for the same label
_SPARE = ("#44AA99", "#DDDDDD", "#56B4E9", "#F0E442", "#000000")
CONTROL_COLOR = "#7F7F7F"  # the legend's "control" entry (the arms keep their family colour)


def family_of(label: str) -> str | None:
    """The family a series label names ("plain-56 (n=3)" -> "plain"), or None."""
    import re

    text = label.lower()
    for family, words in _WORDS:
        # whole words: "depth 1" is not "depth 16", "deep" is not "deeper"
        if any(re.search(rf"\b{re.escape(w)}\b", text) for w in words):
            return family
    return None


def resolve_family(family: str | None, label: str = "") -> str | None:
    """``family`` when it is a key of FAMILIES, else the family it or ``label`` names."""
    if family in FAMILIES:
        return family
    return family_of(family or label) or family_of(label)


def family_color(family: str | None, label: str = "") -> str:
    """The colour of ``family`` (a key of FAMILIES), else of the family ``label`` names, else a
    spare colour chosen by the label's checksum (the same label gets the same colour)."""
    import zlib

    family = resolve_family(family, label)
    if family is not None:
        return FAMILIES[family]
    return _SPARE[zlib.crc32(label.encode()) % len(_SPARE)]


def shade(color: str, lighter: float) -> tuple[float, float, float]:
    """``color`` mixed with white by ``lighter`` (0: itself, 1: white): the shallower of two
    nets of one family in one panel."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return (r + (1 - r) * lighter, g + (1 - g) * lighter, b + (1 - b) * lighter)


def setting_family(values: dict[str, object]) -> str | None:
    """The family a sweep setting names (``{"model.residual": False}`` -> "plain",
    ``{"model.activation": "sigmoid"}`` -> "sigmoid"), or None when it names none or several."""
    found = set()
    for key, value in values.items():
        name = key.split("@")[0].replace("/", ".").split(".")[-1].lower()
        text = str(value).lower()
        if name == "residual" and text in ("true", "false"):
            found.add("residual" if text == "true" else "plain")
        elif name == "pretrained" and text in ("true", "false"):
            found.add("pretrained" if text == "true" else "scratch")
        elif name in ("activation", "norm", "arch", "model", "init"):
            family = family_of(text.replace("_", " "))
            if family is not None:
                found.add(family)
    return found.pop() if len(found) == 1 else None
