"""Export line profiles: a long CSV (one row per sample) and a PNG overlaying the volumes per line."""

import csv

from .atomic_files import atomic_path
from .measurement import format_value

PROFILE_COLUMNS = ["volume", "line", "distance_mm", "intensity", "r_mm", "a_mm", "s_mm"]


def write_profiles_csv(profiles, path):
    """profiles: {(volume name, line name): Profile} -> long CSV with PROFILE_COLUMNS (atomic)."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(PROFILE_COLUMNS)
        for (volume_name, line_name), profile in profiles.items():
            for distance, value, point in zip(profile.distance_mm, profile.intensity, profile.points_ras):
                writer.writerow([volume_name, line_name] + [format_value(float(v)) for v in (distance, value, *point)])


def plot_profiles_png(profiles, path, dpi=100):
    """One panel per line, the profiles of all volumes overlaid (matplotlib, imported lazily).

    A bare Figure renders through the Agg canvas without touching pyplot or the global backend, so this is
    safe inside Slicer's Qt application too.
    """
    from matplotlib.figure import Figure

    if not profiles:
        raise ValueError("no profiles to plot (no lines were measured)")
    line_names = list(dict.fromkeys(line for _, line in profiles))
    figure = Figure(figsize=(6.4, 3.2 * len(line_names)), dpi=dpi, layout="constrained")
    axes = figure.subplots(len(line_names), 1, squeeze=False)[:, 0]
    for axis, line_name in zip(axes, line_names):
        for (volume_name, name), profile in profiles.items():
            if name == line_name:
                axis.plot(profile.distance_mm, profile.intensity, label=volume_name)
        axis.set_title(line_name)
        axis.set_xlabel("distance along line (mm)")
        axis.set_ylabel("intensity")
        axis.legend(fontsize="small")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
