"""`mrqualitymetrics`: measure line sharpness and region SNR/CNR on volumes; paired study statistics.

    mrqualitymetrics measure VOLUME [VOLUME ...] [--line FILE.mrk.json ...] [--roi FILE.mrk.json ...]
        [--circle NAME=R,A,S,DIAMETER_MM ...] [--sphere NAME=R,A,S,DIAMETER_MM ...] [--plane axial]
        [--point-diameter MM] [--snr REGION[:NOISE_REGION] ...] [--cnr A:B[:NOISE_REGION] ...]
        [--contrast-ratio A:B ...] [--difference-snr VOLUME_A:VOLUME_B:REGION ...] [--rayleigh]
        [--step-mm MM] [--interpolation linear|cubic] [--polarity auto|peak|trough|edge] [--series UID]
        --output results.csv [--profiles profiles.csv] [--plot profiles.png]
    mrqualitymetrics study CASES.csv --output summary.csv [--reconstructions A,B]

Volumes are named by their file stem (DICOM: folder name). On failure: exit status 1, one line
"mrqualitymetrics: error: ..." on stderr, and no output file is created or changed.
"""

import argparse
import contextlib
import sys
import warnings

import numpy as np

from .line_profile import DEFAULT_INTERPOLATION, INTERPOLATION_ORDERS

PROGRAM = "mrqualitymetrics"


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def _parse_named_point(text, option):
    name, separator, values = text.partition("=")
    numbers = values.split(",")
    if not separator or not name or len(numbers) != 4:
        raise ValueError(f"{option} expects NAME=R,A,S,DIAMETER_MM, got '{text}'")
    try:
        r, a, s, diameter = (float(v) for v in numbers)
    except ValueError:
        raise ValueError(f"{option} expects numbers in NAME=R,A,S,DIAMETER_MM, got '{text}'") from None
    return name, (r, a, s), diameter


def _split(text, option, minimum, maximum, form):
    parts = text.split(":")
    if not minimum <= len(parts) <= maximum or not all(parts):
        raise ValueError(f"{option} expects {form}, got '{text}'")
    return parts + [None] * (maximum - len(parts))


def _build_parser():
    parser = _ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    m = commands.add_parser("measure", help="measure lines and regions on one or more volumes")
    m.add_argument("volumes", nargs="+", metavar="VOLUME", help="NIfTI/NRRD/MHA file or DICOM series folder")
    m.add_argument("--line", action="append", default=[], metavar="FILE", help="Line or Curve .mrk.json")
    m.add_argument("--roi", action="append", default=[], metavar="FILE",
                   help="ROI, ClosedCurve or point-list .mrk.json (points need --point-diameter)")
    m.add_argument("--circle", action="append", default=[], metavar="NAME=R,A,S,D", help="circular region")
    m.add_argument("--sphere", action="append", default=[], metavar="NAME=R,A,S,D", help="spherical region")
    m.add_argument("--plane", default="axial", choices=["axial", "coronal", "sagittal"], help="circle plane")
    m.add_argument("--point-diameter", type=float, metavar="MM", help="diameter of circles around list points")
    m.add_argument("--snr", action="append", default=[], metavar="REGION[:NOISE]")
    m.add_argument("--cnr", action="append", default=[], metavar="A:B[:NOISE]")
    m.add_argument("--contrast-ratio", action="append", default=[], metavar="A:B")
    m.add_argument("--difference-snr", action="append", default=[], metavar="VOLUME_A:VOLUME_B:REGION",
                   help="NEMA SNR from two repeated acquisitions (volumes named by file stem)")
    m.add_argument("--rayleigh", action="store_true", help="background SD / 0.655 (single-coil magnitude only)")
    m.add_argument("--step-mm", type=float, help="profile step (default 0.1 x smallest voxel spacing)")
    m.add_argument("--interpolation", default=DEFAULT_INTERPOLATION, choices=sorted(INTERPOLATION_ORDERS),
                   help="profile interpolation (default %(default)s; linear = ImageJ's bilinear)")
    m.add_argument("--polarity", default="auto", choices=["auto", "peak", "trough", "edge"])
    m.add_argument("--series", metavar="UID", help="DICOM series UID when a folder holds several series")
    m.add_argument("--output", required=True, metavar="results.csv")
    m.add_argument("--profiles", metavar="profiles.csv", help="long CSV of every profile")
    m.add_argument("--plot", metavar="profiles.png", help="PNG overlaying the volumes per line")
    s = commands.add_parser("study", help="paired statistics of per-case metrics of two reconstructions")
    s.add_argument("cases", metavar="CASES.csv")
    s.add_argument("--output", required=True, metavar="summary.csv")
    s.add_argument("--reconstructions", metavar="A,B", help="order of the two reconstructions (A - B)")
    return parser


def _read_markups(arguments):
    from .markups_io import LINE_TYPES, REGION_TYPES, read_markups_file
    from .measurement import LineSpec

    lines, regions = [], []
    for path in arguments.line:
        for item in read_markups_file(path, arguments.point_diameter, arguments.plane):
            if not isinstance(item, LineSpec):
                raise ValueError(f"--line '{path}' holds a region; use {'/'.join(LINE_TYPES)} markups or --roi")
            item.polarity = arguments.polarity
            lines.append(item)
    for path in arguments.roi:
        for item in read_markups_file(path, arguments.point_diameter, arguments.plane):
            if isinstance(item, LineSpec):
                raise ValueError(f"--roi '{path}' holds a line; use {'/'.join(REGION_TYPES)} markups or --line")
            regions.append(item)
    return lines, regions


def _measure(arguments):
    from .measurement import CnrSpec, ContrastRatioSpec, DifferenceSnrSpec, SnrSpec, measure, write_rows_csv
    from .regions import CircleRegion, SphereRegion
    from .volume_io import read_volume, volume_stem

    lines, regions = _read_markups(arguments)
    for text in arguments.circle:
        name, centre, diameter = _parse_named_point(text, "--circle")
        regions.append(CircleRegion(name, centre, diameter, arguments.plane))
    for text in arguments.sphere:
        name, centre, diameter = _parse_named_point(text, "--sphere")
        regions.append(SphereRegion(name, centre, diameter))
    snrs = [SnrSpec(*_split(t, "--snr", 1, 2, "REGION[:NOISE_REGION]"), rayleigh=arguments.rayleigh)
            for t in arguments.snr]
    cnrs = [CnrSpec(*_split(t, "--cnr", 2, 3, "A:B[:NOISE_REGION]"), rayleigh=arguments.rayleigh)
            for t in arguments.cnr]
    ratios = [ContrastRatioSpec(*_split(t, "--contrast-ratio", 2, 2, "A:B")) for t in arguments.contrast_ratio]
    differences = [DifferenceSnrSpec(*_split(t, "--difference-snr", 3, 3, "VOLUME_A:VOLUME_B:REGION"))
                   for t in arguments.difference_snr]
    if not (lines or regions):
        raise ValueError("nothing to measure: give --line, --roi, --circle or --sphere")
    if arguments.plot and not lines:
        raise ValueError("--plot needs at least one --line")
    stems = _volume_names(arguments.volumes, volume_stem)
    volumes = [read_volume(path, arguments.series, name=stem) for path, stem in zip(arguments.volumes, stems)]
    result = measure(volumes, lines, regions, snrs, cnrs, ratios, step_mm=arguments.step_mm,
                     difference_snrs=differences, interpolation=arguments.interpolation)
    outputs = [(arguments.output, lambda path: write_rows_csv(result.rows, path))]
    if arguments.profiles:
        from .profile_export import write_profiles_csv

        outputs.append((arguments.profiles, lambda path: write_profiles_csv(result.profiles, path)))
    if arguments.plot:
        from .profile_export import plot_profiles_png

        outputs.append((arguments.plot, lambda path: plot_profiles_png(result.profiles, path)))
    _write_all(outputs)
    return len(result.rows)


def _volume_names(paths, volume_stem):
    """File stems; stems shared by several paths get their parent folder prepended ('a/t1', 'b/t1')."""
    import os

    stems = [volume_stem(path) for path in paths]
    return [
        f"{os.path.basename(os.path.dirname(os.path.abspath(path)))}/{stem}" if stems.count(stem) > 1 else stem
        for path, stem in zip(paths, stems)
    ]


def _write_all(outputs):
    """Write every output to a temporary name first; rename them only when all succeeded."""
    from .atomic_files import atomic_path

    with contextlib.ExitStack() as stack:
        for path, write in outputs:
            write(stack.enter_context(atomic_path(path)))


def _study(arguments):
    from .study_stats import paired_study_statistics, read_cases_csv, write_study_csv

    order = None
    if arguments.reconstructions:
        order = [name.strip() for name in arguments.reconstructions.split(",")]
        if len(order) != 2 or not all(order):
            raise ValueError(f"--reconstructions expects A,B, got '{arguments.reconstructions}'")
    rows = paired_study_statistics(read_cases_csv(arguments.cases), order)
    _write_all([(arguments.output, lambda path: write_study_csv(rows, path))])
    return len(rows)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROGRAM}: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    previous_showwarning, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        arguments = _build_parser().parse_args(argv)
        with np.errstate(all="ignore"):
            count = _measure(arguments) if arguments.command == "measure" else _study(arguments)
    except (ValueError, OSError) as error:
        message = " ".join(str(error).split())
        print(f"{PROGRAM}: error: {message}", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = previous_showwarning
    print(f"{PROGRAM}: wrote {count} rows to {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
