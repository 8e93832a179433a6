"""Enhancement worker: reads a volume file, runs inference.enhance, writes the result file atomically.

Run by the Slicer module with Slicer's own Python (PythonSlicer) in a separate process, so that the GUI stays
responsive and a cancel can kill it; also runnable with any Python that has torch and monai:

    python worker.py --input in.nrrd --output out.nrrd --scale 2 --denoise 1.0 --device auto

Protocol on stdout: ``MODEL <id>`` once the model is chosen, ``PROGRESS i/N`` lines while running,
``WARNING: ...`` lines, and on failure one
``ERROR: <reason>`` line. Exit code 0 on success, 2 for a problem with the input or settings, 1 otherwise.
The output file only appears once it is complete.
"""

import argparse
import os
import sys
from pathlib import Path

EXIT_INPUT_ERROR = 2
EXIT_FAILURE = 1


def _make_libraries_importable():
    """Put MRSuperResLib and MRQualityMetricsLib on sys.path.

    Installed extension: both library packages sit side by side in the qt-scripted-modules folder.
    Source tree: MRSuperRes/MRSuperResLib and MRQualityMetrics/MRQualityMetricsLib.
    """
    library_dir = Path(__file__).resolve().parent
    module_dir = library_dir.parent
    # Run as a script, the library folder itself is sys.path[0]: its modules must not shadow anything.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != library_dir]
    for folder in (module_dir, module_dir.parent / "MRQualityMetrics"):
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.append(str(folder))


def _matrix(text):
    """'256x192' -> (256, 192). Parsed here: MRSuperResLib is importable only once run() has set the path."""
    try:
        rows, columns = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLUMNS, got {text!r}") from None
    return rows, columns


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="input volume file (NRRD, NIfTI, MHA)")
    parser.add_argument("--output", required=True, help="result volume file, written atomically")
    parser.add_argument("--scale", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument("--denoise", type=float, default=1.0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--slice-axis", default="auto", choices=("auto", "i", "j", "k"))
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--model", default=None, help="model id from Models.json (default model if omitted)")
    parser.add_argument("--stated-matrix", default=None, type=_matrix,
                        help="ROWSxCOLUMNS the DICOM header states were acquired (helps find a zero-filled series)")
    parser.add_argument("--noise-map", default="off", choices=("off", "auto"),
                        help="auto: the noise varies across the image (parallel imaging); estimate a map of it")
    return parser


def _say(text):
    print(text, flush=True)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    _say(f"WARNING: {message}")


def run(args):
    import warnings

    import SimpleITK as sitk

    _make_libraries_importable()
    from MRQualityMetricsLib.volume import volume_from_sitk, volume_to_sitk

    warnings.showwarning = _show_warning
    output_path = Path(args.output)
    if Path(args.input).resolve() == output_path.resolve():
        raise ValueError("the output file must differ from the input file")
    try:
        image = sitk.ReadImage(str(args.input))
    except RuntimeError as error:
        raise ValueError(f"cannot read input volume {args.input}: {str(error).strip().splitlines()[-1]}") from None
    volume = volume_from_sitk(image, name=Path(args.input).name)
    from MRSuperResLib import inference  # torch and monai: only once the input is known to be readable

    def report(done, total):
        _say(f"PROGRESS {int(done)}/{int(total)}")

    model = inference.model_for(args.model, args.device)
    _say(f"MODEL {model.id}")
    out_array, out_ijk_to_ras = inference.enhance(
        volume.array, volume.ijk_to_ras, scale=args.scale, denoise=args.denoise, device=args.device,
        slice_axis=args.slice_axis, batch_size=args.batch_size, model_id=model.id, progress=report,
        stated_matrix=args.stated_matrix, noise_map=args.noise_map,
    )
    result = volume.with_array(out_array, ijk_to_ras=out_ijk_to_ras)
    # Temporary name in the same folder (same file system), keeping the extension that selects the format.
    temporary = output_path.with_name(f".{output_path.stem}.partial-{os.getpid()}{output_path.suffix}")
    try:
        sitk.WriteImage(volume_to_sitk(result), str(temporary))
        os.replace(temporary, output_path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ValueError as error:
        _say(f"ERROR: {error}")
        return EXIT_INPUT_ERROR
    except Exception as error:  # the parent process shows this one line; the traceback would be noise
        _say(f"ERROR: {type(error).__name__}: {error}")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
