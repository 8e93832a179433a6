"""Enhance an MR volume: in-plane super-resolution and denoising with the shipped MONAI network.

INPUT is a NIfTI, NRRD or MHA file, or a folder holding one DICOM series (--series picks one of several).
OUTPUT is a volume file (.nii.gz, .nii, .nrrd, .mha), or a new folder that receives a derived DICOM
series when INPUT is DICOM and OUTPUT has no volume extension (or with --output-format dicom). Output files are
written under a temporary name and renamed when complete; the input is never modified.
"""

import sys
import time
import warnings
from pathlib import Path

# The formats MRQualityMetricsLib.volume_io.write_volume writes (kept here so that --help stays light).
VOLUME_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")


def _unit_interval(text):
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value:g}")
    return value


def _positive_int(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _acquired_matrix(text):
    import argparse

    from .acquired_matrix import parse_acquired_matrix

    try:
        return parse_acquired_matrix(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser):
    parser.add_argument("input", help="input volume file, or a folder holding a DICOM series (subfolders included)")
    parser.add_argument("--output", "-o", required=True,
                        help="output volume file, or a new folder for a derived DICOM series")
    parser.add_argument("--scale", type=int, choices=(1, 2, 3), default=2,
                        help="in-plane resolution factor (1 = denoise only; default 2)")
    parser.add_argument("--denoise", type=_unit_interval, default=1.0,
                        help="denoising strength 0..1 (0 = none, 1 = full, default 1; at x3 and low SNR 0.6 keeps "
                             "small lesions at their contrast)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="compute device (default auto: CUDA GPU if available)")
    parser.add_argument("--slice-axis", choices=("auto", "i", "j", "k"), default="auto",
                        help="voxel axis across slices; the other two are enhanced (default auto: largest spacing)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, help="slices per batch (default auto)")
    parser.add_argument("--model", default=None, metavar="ID", help="model id from Models.json (default model)")
    parser.add_argument("--network-only", action="store_true",
                        help="skip the data-consistency step that keeps what the input measured (for comparisons)")
    parser.add_argument("--acquired-matrix", type=_acquired_matrix, default="auto", metavar="auto|off|ROWSxCOLS",
                        help="matrix the scanner acquired the slices with, when it zero-filled them onto a finer grid: "
                             "auto (detect from the spectrum, default), off (the grid as measured) or e.g. 256x192")
    parser.add_argument("--noise-map", default="off", metavar="off|auto|FILE",
                        help="noise that varies across the image (parallel imaging, coil normalisation): auto "
                             "estimates a smooth map of its level; FILE gives one (e.g. a g-factor map) on the "
                             "input's grid; off (default) assumes one level")
    parser.add_argument("--series", "--series-uid", dest="series", default=None, metavar="UID",
                        help="SeriesInstanceUID to read when the DICOM folder holds several series")
    parser.add_argument("--output-format", choices=("auto", "file", "dicom"), default="auto",
                        help="auto (default): DICOM series for a DICOM input and an OUTPUT without volume extension")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary (for scripts)")


def has_volume_extension(path):
    return str(path).lower().endswith(VOLUME_EXTENSIONS)


def choose_output_format(input_path, output_path, requested="auto"):
    """'file' or 'dicom'; ValueError for combinations that cannot work."""
    if str(output_path).lower().endswith((".nhdr", ".mhd", ".dcm")):
        raise ValueError(f"cannot write '{output_path}': use one of {', '.join(VOLUME_EXTENSIONS)} "
                         "or a folder name for a DICOM series")
    input_is_dicom = Path(input_path).is_dir()
    if requested == "auto":
        if has_volume_extension(output_path):
            return "file"
        if input_is_dicom:
            return "dicom"
        raise ValueError(f"output '{output_path}' has no volume file extension ({', '.join(VOLUME_EXTENSIONS)})")
    if requested == "file" and not has_volume_extension(output_path):
        raise ValueError(f"output '{output_path}' has no volume file extension ({', '.join(VOLUME_EXTENSIONS)})")
    if requested == "dicom" and not input_is_dicom:
        raise ValueError("DICOM output needs a DICOM input (the patient and study tags come from it)")
    if requested == "dicom" and has_volume_extension(output_path):
        raise ValueError(f"DICOM output goes to a folder, not to a file name like '{output_path}'")
    return requested


def check_paths(input_path, output_path):
    """The input must exist; the output must not be the input or lie inside an input folder."""
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise ValueError(f"input '{input_path}' does not exist")
    source, target = input_path.resolve(), output_path.resolve()
    if source == target or (output_path.exists() and output_path.samefile(input_path)):
        raise ValueError(f"output '{output_path}' is the input; choose another output path (the input is never modified)")
    if input_path.is_dir() and source in target.parents:
        raise ValueError(f"output '{output_path}' lies inside the input DICOM folder; choose a path outside it")
    if not target.parent.is_dir():
        raise ValueError(f"output folder '{target.parent}' does not exist")


class ProgressBar:
    """Slice progress on stderr: a redrawn bar on a terminal, a line every 10 % otherwise."""

    def __init__(self, stream=None, width=30):
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.monotonic()
        self.last_decile = -1
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, done, total):
        fraction = done / total if total else 1.0
        elapsed = time.monotonic() - self.start
        remaining = elapsed / fraction - elapsed if fraction > 0 else float("nan")
        eta = f", {remaining:.0f} s left" if fraction < 1 and remaining == remaining else ""
        if self.interactive:
            filled = int(round(self.width * fraction))
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r  enhancing [{bar}] {done}/{total} slices{eta}   ")
            if done >= total:
                self.stream.write("\n")
        elif int(fraction * 10) > self.last_decile:
            self.last_decile = int(fraction * 10)
            self.stream.write(f"  enhancing: {done}/{total} slices ({100 * fraction:.0f} %){eta}\n")
        self.stream.flush()


def derivation_text(model_id, scale, denoise, slice_axis, data_consistency=True):
    return (f"MRSuperRes model {model_id}: in-plane super-resolution x{scale} (slice axis {slice_axis}), "
            f"denoise {denoise:g}" + ("" if data_consistency else ", network only (no data consistency)"))


def read_noise_map(noise_map, volume):
    """"off" / "auto" as given, or the array of the noise-map volume at that path, which must share the input's grid."""
    import numpy as np

    from MRQualityMetricsLib.volume_io import read_volume

    if noise_map in ("off", "auto"):
        return noise_map
    if not Path(noise_map).exists():
        raise ValueError(f"noise map '{noise_map}' is neither off, auto nor an existing file")
    given = read_volume(noise_map)
    if given.array.shape != volume.array.shape or not np.allclose(given.ijk_to_ras, volume.ijk_to_ras, atol=1e-3):
        raise ValueError(f"noise map '{noise_map}' ({'x'.join(map(str, reversed(given.array.shape)))} voxels) does not "
                         f"lie on the input's grid ({'x'.join(map(str, reversed(volume.array.shape)))} voxels)")
    return given.array


def enhance_file(input_path, output_path, scale=2, denoise=1.0, device="auto", slice_axis="auto", batch_size=None,
                 model_id=None, series_uid=None, output_format="auto", progress=None, data_consistency=True,
                 acquired_matrix="auto", noise_map="off"):
    """Read, enhance and write; returns (output Volume, model id, output format). Raises ValueError on bad input.
    noise_map: "off", "auto" or the path of a volume of relative noise SD on the input's grid."""
    import numpy as np

    from MRQualityMetricsLib.volume_io import read_volume, write_volume

    check_paths(input_path, output_path)
    output_format = choose_output_format(input_path, output_path, output_format)
    if series_uid is not None and not Path(input_path).is_dir():
        raise ValueError("--series applies to a DICOM folder input only")
    if output_format == "dicom" and Path(output_path).exists() and (
            not Path(output_path).is_dir() or any(Path(output_path).iterdir())):
        raise ValueError(f"output '{output_path}' exists and is not an empty folder; choose a new folder for the series")
    volume = read_volume(input_path, series_uid=series_uid)
    bad = int(np.count_nonzero(~np.isfinite(volume.array))) if np.issubdtype(volume.array.dtype, np.floating) else 0
    if bad:
        raise ValueError(f"input '{input_path}' contains {bad} NaN or infinite voxel(s); fix or mask them first")
    noise_map = read_noise_map(noise_map, volume)
    sources = None
    if output_format == "dicom":  # before the run: a source the derived series cannot come from fails early
        from MRSuperResLib import dicom_export

        sources = dicom_export.headers_for_volume(volume, input_path, series_uid)
    from MRSuperResLib import inference  # torch/monai only once the input is known to be good

    model = inference.model_for(model_id, device)
    result = inference.enhance_volume(
        volume, scale=scale, denoise=denoise, device=device, slice_axis=slice_axis, batch_size=batch_size,
        model_id=model.id, progress=progress, data_consistency=data_consistency, acquired_matrix=acquired_matrix,
        noise_map=noise_map,
    )
    if output_format == "file":
        write_volume(result, output_path)
    else:
        dicom_export.write_derived_series(
            result, sources, output_path, description_suffix=f" enhanced x{scale}",
            derivation_description=derivation_text(model.id, scale, denoise, slice_axis, data_consistency),
        )
    return result, model.id, output_format


def run(args) -> int:
    start = time.monotonic()

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"mrsuperres enhance: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show_warning
        result, model_id, output_format = enhance_file(
            args.input, args.output, scale=args.scale, denoise=args.denoise, device=args.device,
            slice_axis=args.slice_axis, batch_size=args.batch_size, model_id=args.model, series_uid=args.series,
            output_format=args.output_format, progress=None if args.quiet else ProgressBar(),
            data_consistency=not args.network_only, acquired_matrix=args.acquired_matrix, noise_map=args.noise_map,
        )
    if not args.quiet:
        size = "x".join(str(n) for n in reversed(result.array.shape))
        spacing = "x".join(f"{s:.3g}" for s in result.spacing)
        kind = "DICOM series" if output_format == "dicom" else "volume"
        print(f"{args.output}: {kind} {size} voxels of {spacing} mm (model {model_id}, x{args.scale}, "
              f"denoise {args.denoise:g}) in {time.monotonic() - start:.1f} s")
    return 0
