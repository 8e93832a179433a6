"""Draw the extension and module icons (128x128 PNG) so they can be regenerated and reviewed as code.

Usage: python scripts/make_icons.py [repository root]

- Resources/Icons/MRSuperRes.png                      extension icon (same design as the MRSuperRes module)
- MRSuperRes/Resources/Icons/MRSuperRes.png            a blocky brain slice turning sharp across an arrow
- MRQualityMetrics/Resources/Icons/MRQualityMetrics.png a line profile drawn over a circular ROI on a slice
"""

import os
import sys
from pathlib import Path

import numpy as np

SIZE_PX = 128
DPI = 100
BACKGROUND = "#1f2a36"
ACCENT = "#f5a623"
PROFILE_COLOR = "#4fc3f7"


def _new_canvas():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    figure = plt.figure(figsize=(SIZE_PX / DPI, SIZE_PX / DPI), dpi=DPI)
    axes = figure.add_axes([0, 0, 1, 1])
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_aspect("equal")
    axes.axis("off")
    figure.patch.set_alpha(0.0)
    axes.add_patch(
        FancyBboxPatch((0.03, 0.03), 0.94, 0.94, boxstyle="round,pad=0,rounding_size=0.12", color=BACKGROUND, zorder=-1)
    )
    return figure, axes


def _brain_slice(size, blur_px):
    """A synthetic axial slice: head ellipse, brain, two dark ventricles; blurred or not."""
    from scipy import ndimage

    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    image = np.zeros((size, size))
    image[(x / 0.92) ** 2 + (y / 0.98) ** 2 <= 1] = 0.35  # scalp
    image[(x / 0.80) ** 2 + (y / 0.88) ** 2 <= 1] = 0.85  # brain
    for side in (-1, 1):
        image[((x - side * 0.17) / 0.11) ** 2 + ((y - 0.05) / 0.38) ** 2 <= 1] = 0.1  # ventricles
    if blur_px:
        image = ndimage.gaussian_filter(image, blur_px)
    return np.clip(image, 0, 1)


def _save(figure, path):
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.png")
    figure.savefig(temporary, dpi=DPI, transparent=True)
    plt.close(figure)
    os.replace(temporary, path)


def draw_super_resolution_icon(path):
    """Left: coarse, blurred slice; right: the same slice sharp; an accent arrow between them."""
    figure, axes = _new_canvas()
    coarse = _brain_slice(12, 0.8)
    sharp = _brain_slice(96, 0)
    axes.imshow(coarse, cmap="gray", extent=(0.08, 0.46, 0.26, 0.74), interpolation="nearest", vmin=0, vmax=1)
    axes.imshow(sharp, cmap="gray", extent=(0.54, 0.92, 0.26, 0.74), interpolation="bilinear", vmin=0, vmax=1)
    axes.annotate(
        "", xy=(0.62, 0.14), xytext=(0.38, 0.14),
        arrowprops={"arrowstyle": "-|>", "color": ACCENT, "lw": 3, "mutation_scale": 14},
    )
    axes.text(0.5, 0.86, "SR", color=ACCENT, fontsize=14, fontweight="bold", ha="center", va="center")
    _save(figure, path)


def draw_quality_metrics_icon(path):
    """A slice with a circular ROI and a line across a ventricle wall, its profile plotted on top."""
    from matplotlib.patches import Circle

    figure, axes = _new_canvas()
    axes.imshow(_brain_slice(96, 0.8), cmap="gray", extent=(0.1, 0.9, 0.1, 0.9), vmin=0, vmax=1)
    axes.add_patch(Circle((0.66, 0.3), 0.09, fill=False, edgecolor=ACCENT, lw=2.2))
    axes.plot([0.22, 0.78], [0.56, 0.56], color=ACCENT, lw=2.2)
    distance = np.linspace(0, 1, 100)
    profile = 0.58 + 0.28 * np.exp(-0.5 * ((distance - 0.5) / 0.08) ** 2)
    axes.plot(0.14 + 0.72 * distance, profile + 0.06, color=PROFILE_COLOR, lw=2.4)
    _save(figure, path)


def main(root=None):
    root = Path(root or Path(__file__).resolve().parents[1])
    draw_super_resolution_icon(root / "Resources" / "Icons" / "MRSuperRes.png")
    draw_super_resolution_icon(root / "MRSuperRes" / "Resources" / "Icons" / "MRSuperRes.png")
    draw_quality_metrics_icon(root / "MRQualityMetrics" / "Resources" / "Icons" / "MRQualityMetrics.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
