"""What a map of the noise level gains where the noise varies across the volume, and costs where it does not.

For each of `mrsuperres evaluate`'s held-out cases (compare_models.evaluation_cases: its truths, grids and seeds) the
noise is simulated uniform and varying smoothly by a ratio (simulate.noise_variation_map, like a parallel-imaging
g-factor map; the SNR is then over its RMS), and the model runs with one noise level (off), with the map estimated
from the image (auto, noise_map.py) and with the true map (an oracle: the best the map can do). Writes the PSNR in
the head mask per case and the means of the four volumes.

    python scripts/noise_map_check.py --scale 1 2 --variation 1 2 3 --output noise-map.md
"""

import argparse
import os
import time

import numpy as np
from band_decomposition import add_case_arguments  # also puts the modules on sys.path
from compare_models import evaluation_cases, log_row, markdown

from MRQualityMetricsLib.atomic_files import write_text_atomic
from MRSuperResLib import evaluate, inference

MODES = ("off", "auto", "oracle")


def check(volumes, scales, variations, snrs, model_id, max_slices, log=print):
    rows, seconds = [], {"off": [], "auto": []}
    for variation in variations:
        for row, degraded, axis_name, psnr in evaluation_cases(volumes, scales, snrs, max_slices, variation):
            row["variation"] = variation
            maps = {"off": "off", "auto": "auto", "oracle": degraded.noise_map}
            for mode, noise_map in maps.items():
                if noise_map is None:  # uniform noise: the oracle is "off"
                    row[mode] = row["off"]
                    continue
                start = time.perf_counter()
                out, _ = inference.enhance(degraded.array, degraded.ijk_to_ras, scale=row["scale"], slice_axis=axis_name,
                                           model_id=model_id, device="cpu", noise_map=noise_map)
                seconds.setdefault(mode, []).append(time.perf_counter() - start)
                row[mode] = psnr(out)
            log_row(row, log)
            rows.append(row)
    return rows, {mode: float(np.mean(values)) for mode, values in seconds.items()}


def means(rows):
    """Rows of the mean of the volumes per variation, scale and SNR."""
    groups = {}
    for row in rows:
        groups.setdefault((row["variation"], row["scale"], row["snr"]), []).append(row)
    return [{"volume": f"mean, variation {variation:g}", "scale": scale, "snr": snr,
             **{mode: float(np.mean([r[mode] for r in group])) for mode in MODES}}
            for (variation, scale, snr), group in sorted(groups.items())]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mrsr-unet48-2d-v1", help="catalogue model id")
    parser.add_argument("--variation", nargs="+", type=float, default=[1.0, 2.0, 3.0],
                        help="largest / smallest noise SD (1 = uniform)")
    add_case_arguments(parser, scales=(1, 2))
    args = parser.parse_args()
    rows, seconds = check(args.volumes or evaluate.default_volumes(), args.scale, args.variation, args.snr, args.model,
                          args.max_slices)
    labels = ["one noise level", "estimated map", "true map"]
    timing = ", ".join(f"{mode} {value:.1f} s" for mode, value in seconds.items())
    write_text_atomic(args.output, f"# Noise maps: PSNR in the head mask (dB), model {args.model}\n\n"
                      f"Mean time per enhance() on the CPU ({os.cpu_count()} logical cores): {timing}.\n\n"
                      + markdown(means(rows), MODES, labels) + "\n"
                      + markdown([{**r, "volume": f"{r['volume']}, variation {r['variation']:g}"} for r in rows],
                                 MODES, labels))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
