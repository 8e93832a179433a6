"""Time and peak memory of MRSuperRes enhance() per volume, next to the classical baselines, in one run.

Each (case, method) runs in a fresh subprocess of this script (internal --single mode), so its peak process RAM
(ru_maxrss, which cannot be reset) and its peak GPU memory are its own. Inputs are deterministic synthetic
head-like volumes (numpy only, no data files), so the script also runs on a GPU machine without SimpleITK.
Only --cli (end-to-end command line timing, file IO included) needs SimpleITK.

    python benchmarks/benchmark_enhance.py --device cpu
    python benchmarks/benchmark_enhance.py --device cuda --repeat 5 --output /tmp/out/cuda.md

See benchmarks/README.md for what is measured and the caveats.
"""

import argparse
import csv
import datetime
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODULE_DIRS = [REPO / "MRSuperRes", REPO / "MRQualityMetrics"]
for _folder in reversed(MODULE_DIRS):  # run from a checkout without pip install (the GPU machine)
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from MRQualityMetricsLib.atomic_files import write_text_atomic  # noqa: E402

RESULT_PREFIX = "BENCHMARK_RESULT "
BASELINES = ("zero_fill", "bspline", "bicubic", "nlm")
BASELINE_NEEDS = {"bspline": ("scipy.ndimage", "scipy"), "nlm": ("skimage.restoration", "scikit-image")}
SCALE = 2
COLUMNS = ["case", "input_shape", "output_shape", "method", "kind", "device", "seconds", "first_call_seconds",
           "network_seconds", "timed_runs", "peak_ram_mb", "ram_increase_mb", "peak_gpu_allocated_mb",
           "peak_gpu_reserved_mb", "batch_size", "model_load_seconds", "cuda_init_seconds", "status", "notes"]
RAM_TARGET_MB = GPU_TARGET_MB = 4096


@dataclass(frozen=True)
class Case:
    shape_kji: tuple
    spacing_ijk: tuple  # mm; the slice axis (k) has the largest spacing, so enhance() picks it
    description: str


CASES = {
    "256x256x176": Case((176, 256, 256), (0.9, 0.9, 1.0), "3D head volume, 0.9 mm in-plane"),
    "512x512x30": Case((30, 512, 512), (0.45, 0.45, 5.0), "clinical 2D series, 5 mm slices"),
    "512x512x400": Case((400, 512, 512), (0.45, 0.45, 0.5), "large volume (tiled into slice batches)"),
}
DEFAULT_CASES = {"cpu": ["256x256x176", "512x512x30"], "cuda": list(CASES)}
CLI_CASE = "256x256x176"


# ---------------------------------------------------------------------------------------------- inputs


def _inside(radius, boundary, width):
    """Soft indicator radius < boundary (logistic edge of `width`, in the same normalised units)."""
    return 1.0 / (1.0 + np.exp(np.clip((radius - boundary) / width, -50, 50)))


def head_phantom(shape_kji, spacing_ijk, seed=0, snr=25.0, level=1000.0) -> np.ndarray:
    """Ellipsoidal head (scalp, skull, CSF, folded grey/white matter, ventricles, small lesions) with Rician noise.

    T1-like intensities; float32 [k, j, i]; deterministic for a given seed. SNR is white matter / noise sigma.
    """
    slices, rows, cols = shape_kji
    sx, sy, sz = spacing_ijk
    semi_axes = np.array([72.0, 92.0, 85.0], dtype=np.float32)  # mm, left-right, anterior-posterior, S-I
    width = 0.5 * min(sx, sy) / float(semi_axes.mean())  # partial-volume edge of half a voxel
    sigma = level * 0.8 / snr
    x = ((np.arange(cols) - (cols - 1) / 2) * sx / semi_axes[0]).astype(np.float32)
    y = ((np.arange(rows) - (rows - 1) / 2) * sy / semi_axes[1]).astype(np.float32)
    lesions = [((0.25, 0.2, 0.1), 0.04), ((-0.3, -0.15, 0.25), 0.03), ((0.1, -0.35, -0.2), 0.05)]
    out = np.empty(shape_kji, dtype=np.float32)
    for start in range(0, slices, 8):
        stop = min(slices, start + 8)
        z = ((np.arange(start, stop) - (slices - 1) / 2) * sz / semi_axes[2]).astype(np.float32)
        zz, yy, xx = z[:, None, None], y[None, :, None], x[None, None, :]
        radius = np.sqrt(xx**2 + yy**2 + zz**2)
        folds = 0.06 * np.sin(9 * np.arctan2(yy, xx)) * np.cos(7 * np.pi * zz)  # gyri
        head, bone, brain, cortex = (_inside(radius, b, width) for b in (1.0, 0.94, 0.88, 0.84))
        white = _inside(radius, 0.62 + folds, width)
        image = 0.85 * (head - bone) + 0.08 * (bone - brain) + 0.3 * (brain - cortex)
        image += 0.55 * (cortex - white) + 0.8 * white
        for side in (-1, 1):  # lateral ventricles
            ventricle = _inside(np.sqrt(((xx - side * 0.12) / 0.08) ** 2 + ((yy - 0.05) / 0.25) ** 2
                                        + ((zz - 0.1) / 0.15) ** 2), 1.0, 0.05)
            image += (0.3 - 0.8) * ventricle * white
        for (cx, cy, cz), size in lesions:
            image -= 0.4 * _inside(np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2 + (zz - cz) ** 2), size, width) * white
        image *= level * (1.0 + 0.1 * yy)  # gentle receive-coil bias
        rng = np.random.default_rng([seed, start])
        real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
        imaginary = sigma * rng.standard_normal(image.shape, dtype=np.float32)
        out[start:stop] = np.sqrt(real**2 + imaginary**2)
    return out


def case_geometry(case: Case) -> np.ndarray:
    """IJK-to-RAS: axial slices, LPS-ordered voxels (as DICOM stores them), centred on the origin."""
    matrix = np.diag([-case.spacing_ijk[0], -case.spacing_ijk[1], case.spacing_ijk[2], 1.0])
    centre = (np.array(case.shape_kji[::-1]) - 1) / 2
    matrix[:3, 3] = -matrix[:3, :3] @ centre
    return matrix


# ---------------------------------------------------------------------------------------------- one run


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak so far."""
    try:
        with open("/proc/self/statm") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _maxrss_mb(resource.getrusage(resource.RUSAGE_SELF))


def _maxrss_mb(usage) -> float:
    return usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


class NetworkTimer:
    """Sums the forward time of a torch module (CUDA events on the GPU, so no extra synchronisation) and records
    the batch size of every forward pass."""

    def __init__(self, module, device):
        import torch

        self.torch, self.cuda = torch, device.type == "cuda"
        self.spans, self.starts, self.batch_sizes = [], [], []
        self.handles = [module.register_forward_pre_hook(self._start), module.register_forward_hook(self._stop)]

    def _mark(self):
        if self.cuda:
            event = self.torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _start(self, module, inputs):
        self.batch_sizes.append(int(inputs[0].shape[0]))
        self.starts.append(self._mark())

    def _stop(self, module, inputs, output):
        self.spans.append((self.starts.pop(), self._mark()))

    def take_seconds(self):
        """Seconds spent in forward since the last call, or None if the module was never called."""
        if not self.spans:
            return None
        if self.cuda:
            self.torch.cuda.synchronize()
            total = sum(start.elapsed_time(stop) for start, stop in self.spans) / 1000.0
        else:
            total = sum(stop - start for start, stop in self.spans)
        self.spans = []
        return total

    def remove(self):
        for handle in self.handles:
            handle.remove()


def _model_runner(model_id, device_name, geometry, result, noise_map="off"):
    """(callable(array) -> output, network timer, batch sizes seen, device).

    Imports, CUDA context creation and the weight loading (SHA-256 check + torch.load) happen here and are timed
    separately, so the timed calls hold only what enhance() does per volume.
    """
    import monai  # noqa: F401  (imported before timing: the module load is not part of a call)
    import torch

    from MRSuperResLib import inference, model_catalog

    device = inference.resolve_device(device_name)
    if device.type == "cuda":
        start = time.perf_counter()
        torch.zeros(1, device=device)
        torch.cuda.synchronize()
        result["cuda_init_seconds"] = time.perf_counter() - start
        result["device_name"] = torch.cuda.get_device_name(device)
    result["torch_threads"] = torch.get_num_threads()
    info = model_catalog.get_model(model_id, device.type)
    start = time.perf_counter()
    # enhance() keeps one model per (id, file, device) in a cache; loading it here and hooking that instance
    # times its forward passes without changing what enhance() runs.
    timer = NetworkTimer(inference._model(info, device), device)
    result["model_load_seconds"] = time.perf_counter() - start

    def call(array):
        # The network's own batches: progress counts final slices, which the Wiener step releases in chunks.
        timer.batch_sizes.clear()
        output, _ = inference.enhance(array, geometry, scale=SCALE, device=device_name, model_id=info.id,
                                      noise_map=noise_map)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return output

    return call, timer, timer.batch_sizes, device


def _baseline_runner(name, geometry, result):
    import importlib

    import torch  # zero_fill and nlm use torch FFTs

    from MRSuperResLib import baselines

    result["torch_threads"] = torch.get_num_threads()
    module, package = BASELINE_NEEDS.get(name, (None, None))
    if module:
        try:
            importlib.import_module(module)
        except ImportError:
            return None, f"skipped: {package} is not installed"
    return (lambda array: baselines.run_method(name, array, geometry, scale=SCALE)[0]), None


def run_single(args) -> dict:
    """Time one method on one input (this process runs nothing else); returns the result record."""
    import warnings

    array = np.load(args.input)
    geometry = np.array(json.loads(args.geometry), dtype=float)
    kind, name = args.method.split(":", 1)
    result = {"status": "ok", "warnings": []}
    timer = batches = device = None
    if kind == "model":
        call, timer, batches, device = _model_runner(name, args.device, geometry, result, args.noise_map)
    else:
        call, skipped = _baseline_runner(name, geometry, result)
        if skipped:
            return {"status": skipped}
    torch_cuda = device is not None and device.type == "cuda"
    if torch_cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    result["pre_call_rss_mb"] = _rss_mb()
    times, network = [], []
    warmup = args.warmup if kind == "model" else 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for run in range(warmup + args.repeat):
            start = time.perf_counter()
            output = call(array)
            times.append(time.perf_counter() - start)
            result["output_shape"] = list(output.shape)
            if timer is not None:
                network.append(timer.take_seconds())
            del output
            print(f"  {args.method} run {run + 1}/{warmup + args.repeat}: {times[-1]:.2f} s", file=sys.stderr)
    result["warnings"] = sorted({str(w.message) for w in caught})
    result["times"] = times
    result["first_call_seconds"] = times[0]
    result["seconds"] = statistics.median(times[warmup:])
    if network and None not in network[warmup:]:
        result["network_seconds"] = statistics.median(network[warmup:])
    if batches:
        result["batch_size"] = batches[0]
    if torch_cuda:
        result["peak_gpu_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["peak_gpu_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    return result


# ---------------------------------------------------------------------------------------------- orchestration


def _spawn(command, env=None):
    """Run a child; returns (exit code, stdout, wall seconds, peak RSS MB of that child alone)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    stdout = process.stdout.read()
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)  # rusage of this child only, unlike RUSAGE_CHILDREN
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, stdout, time.perf_counter() - start, _maxrss_mb(usage)


def _child_env():
    env = dict(os.environ)
    paths = [str(folder) for folder in MODULE_DIRS] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def measure(case_name, input_path, method, args) -> dict:
    case = CASES[case_name]
    command = [sys.executable, str(Path(__file__).resolve()), "--single", "--input", str(input_path),
               "--geometry", json.dumps(case_geometry(case).tolist()), "--method", method,
               "--device", args.device, "--repeat", str(args.repeat), "--warmup", str(args.warmup),
               "--noise-map", args.noise_map]
    code, stdout, _, peak_mb = _spawn(command, _child_env())
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if code != 0 or not lines:
        return {"status": f"failed (exit code {code}; see the log above)"}
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    if result["status"] == "ok":
        result["peak_ram_mb"] = peak_mb
    return result


def measure_cli(input_file, model_id, args, folder) -> dict:
    """Wall time and peak RSS of `mrsuperres enhance` as a user runs it (Python start-up and file IO included)."""
    times, peaks = [], []
    for run in range(args.repeat):
        output = Path(folder) / f"cli_output{args.cli_format}"
        command = [sys.executable, "-m", "MRSuperResLib.cli", "enhance", str(input_file), "-o", str(output),
                   "--scale", str(SCALE), "--device", args.device, "--model", model_id, "--noise-map", args.noise_map,
                   "--quiet"]
        code, _, seconds, peak_mb = _spawn(command, _child_env())
        if code != 0:
            return {"status": f"failed (exit code {code})"}
        times.append(seconds)
        peaks.append(peak_mb)
        output.unlink()
        print(f"  cli:{model_id} run {run + 1}/{args.repeat}: {seconds:.2f} s", file=sys.stderr)
    return {"status": "ok", "seconds": statistics.median(times), "first_call_seconds": times[0],
            "times": times, "peak_ram_mb": max(peaks)}


def _shape_text(shape_kji):
    return "x".join(str(n) for n in reversed(shape_kji)) if shape_kji else ""  # i x j x k, like the case names


def make_row(case_name, method, kind, device, result, args) -> dict:
    case = CASES[case_name]
    notes = []
    from MRSuperResLib.inference import output_geometry  # numpy only

    expected_shape, _ = output_geometry(case_geometry(case), case.shape_kji, SCALE)
    row = {"case": case_name, "input_shape": _shape_text(case.shape_kji), "method": method, "kind": kind,
           "device": device, "status": result["status"],
           "output_shape": _shape_text(result.get("output_shape", expected_shape))}
    if result["status"] != "ok":
        return row  # the status (skipped / failed, with the reason) is shown instead of the seconds
    for key in ("seconds", "first_call_seconds", "network_seconds", "model_load_seconds", "cuda_init_seconds",
                "peak_ram_mb", "peak_gpu_allocated_mb", "peak_gpu_reserved_mb"):
        if key in result:
            row[key] = round(result[key], 3 if "seconds" in key else 1)
    if "pre_call_rss_mb" in result:
        row["ram_increase_mb"] = round(result["peak_ram_mb"] - result["pre_call_rss_mb"], 1)
    row["timed_runs"] = len(result["times"]) - (args.warmup if kind == "model" else 0)
    row["batch_size"] = result.get("batch_size", "")
    if kind == "model":
        if args.warmup:
            notes.append(f"first call {result['first_call_seconds']:.2f} s")
        if "network_seconds" in result:
            notes.append(f"network {result['network_seconds']:.2f} s")
        notes.append(f"batch {result.get('batch_size')}")
        if "peak_gpu_reserved_mb" in result:
            notes.append(f"GPU reserved {result['peak_gpu_reserved_mb']:.0f} MB")
        excluded = [f"weights load {result['model_load_seconds']:.2f} s"]
        if "cuda_init_seconds" in result:
            excluded.append(f"CUDA init {result['cuda_init_seconds']:.2f} s")
        notes.append(" + ".join(excluded) + " before the timed calls")
    if kind == "cli":
        notes.append(f"file IO ({args.cli_format}) and Python start-up included")
    if "ram_increase_mb" in row:
        notes.append(f"+{row['ram_increase_mb']:.0f} MB over pre-call")
    if row["timed_runs"] > 1:
        notes.append(f"median of {row['timed_runs']}")
    notes.extend(f"warning: {text}" for text in result.get("warnings", []))
    row["notes"] = "; ".join(notes)
    return row


def _format(value, digits):
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "—"


def markdown_table(rows) -> str:
    lines = ["| case | input shape | output shape | method | device | seconds | peak RAM MB | peak GPU MB | notes |",
             "|---|---|---|---|---|---:|---:|---:|---|"]
    for row in rows:
        seconds = _format(row.get("seconds", ""), 2) if row["status"] == "ok" else row["status"]
        lines.append(f"| {row['case']} | {row['input_shape']} | {row['output_shape'] or '—'} | {row['method']} | "
                     f"{row['device']} | {seconds} | {_format(row.get('peak_ram_mb', ''), 0)} | "
                     f"{_format(row.get('peak_gpu_allocated_mb', ''), 0)} | {row.get('notes', '')} |")
    return "\n".join(lines)


def target_lines(rows, device, default_model) -> list:
    """The issue's targets checked against this run's rows (default model, default settings)."""
    def find(case, kind, method=default_model):
        return next((r for r in rows if r["case"] == case and r["kind"] == kind and r["method"] == method
                     and r["status"] == "ok"), None)

    def verdict(ok):
        return "met" if ok else "NOT met"

    lines = []
    main = find("256x256x176", "model")
    if device == "cuda":
        if main:
            model_seconds = main.get("network_seconds", main["seconds"])
            lines.append(f"- ≤ 1 s model time, 256x256x176 ×2 ({default_model}): network {model_seconds:.2f} s, "
                         f"whole enhance() {main['seconds']:.2f} s → {verdict(model_seconds <= 1)} "
                         f"(enhance() {verdict(main['seconds'] <= 1)})")
        cli = find("256x256x176", "cli", f"cli:{default_model}")
        lines.append(f"- ≤ 3 s end-to-end CLI: {cli['seconds']:.2f} s → {verdict(cli['seconds'] <= 3)}" if cli else
                     "- ≤ 3 s end-to-end CLI: not measured (needs --cli and SimpleITK); the in-process enhance() "
                     "time above covers normalisation, zero-fill, network and copy back, but no file IO")
        gpu = [r for r in rows if r["kind"] == "model" and r["method"] == default_model and r["status"] == "ok"]
        for row in gpu:
            lines.append(f"- ≤ {GPU_TARGET_MB} MB GPU, {row['case']}: {row['peak_gpu_allocated_mb']:.0f} MB allocated"
                         f" ({row['peak_gpu_reserved_mb']:.0f} MB reserved) → "
                         f"{verdict(row['peak_gpu_allocated_mb'] <= GPU_TARGET_MB)}")
    elif main:
        lines.append(f"- ≤ 60 s, 256x256x176 ×2 ({default_model}): {main['seconds']:.1f} s → "
                     f"{verdict(main['seconds'] <= 60)}")
    ram = [r for r in rows if r["kind"] in ("model", "cli") and default_model in r["method"] and r["status"] == "ok"]
    for row in ram:
        lines.append(f"- ≤ {RAM_TARGET_MB} MB RAM, {row['case']} {row['kind']}: {row['peak_ram_mb']:.0f} MB → "
                     f"{verdict(row['peak_ram_mb'] <= RAM_TARGET_MB)}")
    return lines


def _version(package, module=None):
    """Installed version; a package put on sys.path without metadata (a carried wheel folder) is imported."""
    import importlib
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        try:
            return getattr(importlib.import_module(module or package), "__version__", "unknown")
        except ImportError:
            return "not installed"


def machine_lines(args, rows_results) -> list:
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    extra = next((r for r in rows_results if r.get("device_name") or r.get("torch_threads")), {})
    lines = [f"- Date: {datetime.datetime.now().isoformat(timespec='seconds')}",
             f"- Command: `python {' '.join(sys.argv)}`",
             f"- CPU: {cpu}, {os.cpu_count()} logical cores, {memory_gb:.0f} GiB RAM; "
             f"torch threads {extra.get('torch_threads', '?')}"]
    if extra.get("device_name"):
        lines.append(f"- GPU: {extra['device_name']}")
    lines.append(f"- Python {platform.python_version()}, numpy {_version('numpy')}, torch {_version('torch')}, "
                 f"monai {_version('monai')}, scipy {_version('scipy')}, scikit-image {_version('scikit-image', 'skimage')}")
    if args.note:
        lines.append(f"- Note: {args.note}")
    return lines


def write_reports(rows, results, args, default_model):
    cases = sorted({row["case"] for row in rows}, key=list(CASES).index)
    inputs = [f"- {name}: {_shape_text(CASES[name].shape_kji)} voxels (i x j x k) of "
              f"{' x '.join(f'{s:g}' for s in CASES[name].spacing_ijk)} mm, {CASES[name].description}" for name in cases]
    text = "\n".join([
        f"# MRSuperRes enhance benchmark ({args.device})", "",
        *machine_lines(args, results), "",
        "Inputs: deterministic synthetic head phantoms (ellipsoidal scalp, skull, CSF, folded grey/white matter, "
        "ventricles, lesions; Rician noise, SNR 25 in white matter), enhanced ×2 in-plane, denoise 1, default "
        f"batch size, noise map {args.noise_map} (models):", *inputs, "",
        markdown_table(rows), "",
        f"Targets (default model on {args.device}: {default_model}):", *target_lines(rows, args.device, default_model), "",
        "seconds: median wall time of enhance() (models, in-process: intensity normalisation, noise estimate, "
        "k-space zero-fill, network, copy back; no file IO) or of the classical method, after "
        f"{args.warmup} untimed warm-up call(s) for models (first call: the first of them). Weight loading "
        "(SHA-256 check) and CUDA context creation happen before and are reported in the notes; network: the "
        "forward passes alone. cli: `mrsuperres enhance` wall time with Python start-up and file IO. Baselines "
        "run on the CPU whatever --device says. Peak RAM: ru_maxrss of a fresh process per row (Python, torch "
        "and the input included); peak GPU: torch.cuda.max_memory_allocated over all calls of the row.", "",
    ])
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output, text)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(output.with_suffix(".csv"), buffer.getvalue())
    return text


def default_models():
    from MRSuperResLib import model_catalog

    return [info.id for info in model_catalog.list_models() if info.default_for]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), help="default: cpu " +
                        " ".join(DEFAULT_CASES["cpu"]) + "; cuda: all")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", nargs="*", default=None, metavar="ID",
                        help="model ids (default: the catalogue's default models, quality and fast; none: skip)")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=BASELINES)
    parser.add_argument("--skip-nlm-on", nargs="*", default=[], choices=list(CASES), metavar="CASE",
                        help="cases on which NLM is not run (recorded as skipped)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per method (median reported)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed model calls before the timed ones (default: 1 on cuda, 0 on cpu)")
    parser.add_argument("--cli", action="store_true",
                        help=f"also time `mrsuperres enhance` end to end on {CLI_CASE} (needs SimpleITK)")
    parser.add_argument("--cli-format", default=".nii.gz", choices=(".nii.gz", ".nii", ".nrrd", ".mha"))
    parser.add_argument("--output", default=None, help="Markdown report (default benchmarks/results/<device>.md); "
                        "the CSV goes next to it")
    parser.add_argument("--noise-map", choices=("off", "auto"), default="off",
                        help="the models' noise map (enhance(noise_map=...)): auto times the estimated map too")
    parser.add_argument("--note", default="", help="free text added to the report (e.g. the machine is shared)")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--geometry", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.warmup is None:
        args.warmup = 1 if args.device == "cuda" else 0
    args.cases = args.cases or DEFAULT_CASES[args.device]
    args.output = args.output or str(REPO / "benchmarks" / "results" / f"{args.device}.md")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.single:
        print(RESULT_PREFIX + json.dumps(run_single(args)), flush=True)
        return 0
    if args.cli:
        try:
            import SimpleITK  # noqa: F401
        except ImportError:
            sys.exit("--cli needs SimpleITK (the command line reads and writes volume files); run without --cli")
    from MRSuperResLib import model_catalog

    models = default_models() if args.models is None else args.models
    default_model = model_catalog.get_model(None, args.device).id
    methods = [("model", f"model:{m}", m) for m in models] + [("baseline", f"baseline:{b}", b) for b in args.baselines]
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="mrsr-bench-") as folder:
        for case_name in args.cases:
            case = CASES[case_name]
            start = time.perf_counter()
            volume = head_phantom(case.shape_kji, case.spacing_ijk)
            input_path = Path(folder) / f"{case_name}.npy"
            np.save(input_path, volume)
            print(f"{case_name}: phantom {volume.shape} made in {time.perf_counter() - start:.1f} s", file=sys.stderr)
            for kind, method, label in methods:
                device = args.device if kind == "model" else "cpu"
                if label == "nlm" and case_name in args.skip_nlm_on:
                    result = {"status": "skipped (--skip-nlm-on)"}
                else:
                    result = measure(case_name, input_path, method, args)
                results.append(result)
                rows.append(make_row(case_name, label, kind, device, result, args))
                print(markdown_table(rows[-1:]).splitlines()[-1], file=sys.stderr)
                write_reports(rows, results, args, default_model)
            if args.cli and case_name == CLI_CASE:
                from MRQualityMetricsLib.volume import Volume
                from MRQualityMetricsLib.volume_io import write_volume

                input_file = Path(folder) / f"cli_input{args.cli_format}"
                write_volume(Volume(volume, case_geometry(case), name=case_name), input_file)
                for model_id in models:
                    result = measure_cli(input_file, model_id, args, folder)
                    results.append(result)
                    rows.append(make_row(case_name, f"cli:{model_id}", "cli", args.device, result, args))
                    write_reports(rows, results, args, default_model)
            del volume
    print(write_reports(rows, results, args, default_model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
