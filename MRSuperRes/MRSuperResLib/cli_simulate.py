"""Simulate a low-resolution noisy MR acquisition of a volume (k-space truncation, noise, scanner effects).

The two voxel axes other than the slice axis are degraded slice by slice: k-space truncated to round(n / scale)
samples, complex Gaussian noise at the requested SNR (mean foreground / sigma, once per volume; --noise-variation makes its
SD vary smoothly across the volume), magnitude.
The output keeps the position of voxel 0; its in-plane spacing grows by n_in / n_out (or stays on the input grid
with --scanner-zero-fill). A fixed --seed gives identical output.
"""


def add_arguments(parser):
    parser.add_argument("input", help="input volume (NIfTI, NRRD, MHA or a DICOM series folder)")
    parser.add_argument("--output", "-o", required=True, help="output volume file (.nii.gz, .nrrd, .mha ...)")
    parser.add_argument("--scale", type=float, default=2.0, help="in-plane resolution loss factor (>= 1, default 2)")
    parser.add_argument("--snr", type=float, default=20.0,
                        help="mean foreground signal / noise sigma (default 20); 'inf' for no noise")
    parser.add_argument("--partial-fourier", type=float, default=1.0,
                        help="fraction of phase-encode lines kept, 0.5..1 (default 1 = full)")
    parser.add_argument("--apodisation", type=float, default=0.0,
                        help="k-space Hann filter strength 0..1 (default 0 = none)")
    parser.add_argument("--bias-field", type=float, default=0.0, metavar="STRENGTH",
                        help="smooth multiplicative bias field exp(+-STRENGTH) (default 0 = none)")
    parser.add_argument("--slice-profile-mm", type=float, default=None, metavar="MM",
                        help="blur along the slice axis with a slice profile of this FWHM (no decimation)")
    parser.add_argument("--slice-profile", choices=("gaussian", "rect"), default="gaussian",
                        help="shape of the slice profile (default gaussian)")
    parser.add_argument("--noise-variation", type=float, default=1.0, metavar="RATIO",
                        help="noise SD varying smoothly across the volume, as parallel imaging's g-factor makes it: "
                             "largest / smallest SD (default 1 = uniform; the SNR is then over its RMS)")
    parser.add_argument("--scanner-zero-fill", action="store_true",
                        help="zero-fill the result back to the input grid, as scanners do")
    parser.add_argument("--slice-axis", choices=("auto", "i", "j", "k"), default="auto",
                        help="slice axis (default auto: largest spacing, ties -> closest to S-I)")
    parser.add_argument("--series-uid", default=None, help="series to read when INPUT is a DICOM folder with several")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args) -> int:
    import math

    from MRQualityMetricsLib.volume_io import read_volume, write_volume
    from MRSuperResLib.simulate import simulate_volume

    volume = read_volume(args.input, series_uid=args.series_uid)
    out, result = simulate_volume(
        volume,
        scale=args.scale,
        snr=None if math.isinf(args.snr) else args.snr,
        partial_fourier=args.partial_fourier,
        apodisation=args.apodisation,
        bias_field_strength=args.bias_field,
        slice_profile_mm=args.slice_profile_mm,
        slice_profile=args.slice_profile,
        scanner_zero_fill=args.scanner_zero_fill,
        slice_axis=args.slice_axis,
        seed=args.seed,
        noise_variation=args.noise_variation,
    )
    write_volume(out, args.output)
    print(
        f"{args.output}: {'x'.join(map(str, reversed(out.array.shape)))} voxels (i x j x k), "
        f"slice axis {'ijk'[result.slice_axis]}, acquired matrix {'x'.join(map(str, reversed(result.acquired_shape)))}, "
        f"noise sigma {result.sigma:.4g}"
    )
    return 0
