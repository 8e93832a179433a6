"""Python dependencies and compute device of MRSuperRes inside Slicer, and the messages users see about them.

- torch comes only from the PyTorch extension (``PyTorchUtils.installTorch``), never from pip here.
- monai and the other packages come from Resources/requirements.txt, installed after asking
  (``slicer.pydeps.pip_ensure`` in Slicer >= 5.11, else ``slicer.util.pip_install``).
Nothing is installed or imported at import time; the message helpers are plain Python and tested outside Slicer.
"""

import importlib.metadata
import importlib.util
import math
from pathlib import Path

TORCH_REQUIREMENT = ">=2.1"
REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "requirements.txt"
# Never let pip replace what Slicer (or the PyTorch extension) provides.
PROTECTED_PACKAGES = ["torch", "SimpleITK", "numpy", "vtk"]


def readRequirements(path=REQUIREMENTS_FILE):
    """Requirement strings of a requirements.txt (comments, blank lines and pip options skipped)."""
    requirements = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirements.append(line)
    return requirements


def _parseRequirement(text):
    """(distribution name, [(operator, version)]) of a simple requirement like "monai>=1.4,<2"."""
    import re

    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*)$", text)
    if match is None:
        raise ValueError(f"cannot parse requirement {text!r}")
    name, rest = match.group(1), match.group(3).split(";", 1)[0]
    clauses = [re.match(r"^(==|>=|<=|!=|~=|>|<)\s*(\d[\w.+*]*)$", part.strip()) for part in rest.split(",") if part.strip()]
    if any(clause is None for clause in clauses):
        raise ValueError(f"cannot parse version clause of requirement {text!r}")
    return name, [(clause.group(1), clause.group(2)) for clause in clauses]


def _versionKey(version):
    import re

    return tuple(int(part) for part in re.findall(r"\d+", version.split("+", 1)[0])[:4])


def _satisfies(installed, operator, required):
    a, b = _versionKey(installed), _versionKey(required)
    length = max(len(a), len(b))
    a, b = a + (0,) * (length - len(a)), b + (0,) * (length - len(b))
    return {
        ">=": a >= b, ">": a > b, "<=": a <= b, "<": a < b, "==": a == b, "!=": a != b,
        "~=": a >= b and a[: max(len(_versionKey(required)) - 1, 1)] == b[: max(len(_versionKey(required)) - 1, 1)],
    }[operator]


def unmetRequirements(requirements):
    """The requirement strings that are not installed in a satisfying version."""
    unmet = []
    for requirement in requirements:
        name, clauses = _parseRequirement(requirement)
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            unmet.append(requirement)
            continue
        if not all(_satisfies(installed, operator, version) for operator, version in clauses):
            unmet.append(requirement)
    return unmet


def torchInstalled():
    return importlib.util.find_spec("torch") is not None


def ensureTorch(askConfirmation=True):
    """Import torch, installing it through the PyTorch extension (after asking) when missing."""
    if torchInstalled():
        import torch

        if unmetRequirements([f"torch{TORCH_REQUIREMENT}"]):
            raise RuntimeError(
                f"PyTorch {torch.__version__} is too old for MRSuperRes (needs torch{TORCH_REQUIREMENT}); "
                f"update it in the 'PyTorch Utils' module with the version requirement '{TORCH_REQUIREMENT}'."
            )
        return torch
    try:
        import PyTorchUtils
    except ModuleNotFoundError:
        raise RuntimeError(
            "MRSuperRes needs the PyTorch extension: install 'PyTorch' from the Extensions Manager and restart Slicer."
        ) from None
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
        askConfirmation=askConfirmation, torchVersionRequirement=TORCH_REQUIREMENT
    )
    if torch is None:
        raise RuntimeError("PyTorch was not installed (cancelled); MRSuperRes cannot run without it.")
    return torch


def ensureRequirements(askConfirmation=True, requirementsFile=REQUIREMENTS_FILE):
    """Install the missing packages of requirements.txt (monai, ...) after asking; torch is left alone."""
    import slicer

    unmet = unmetRequirements(readRequirements(requirementsFile))
    if not unmet:
        return
    pydeps = getattr(slicer, "pydeps", None)
    if pydeps is None:
        try:
            import slicer.pydeps as pydeps
        except ImportError:
            pydeps = None
    if pydeps is not None and hasattr(pydeps, "pip_ensure"):
        pydeps.pip_ensure(pydeps.load_requirements(requirementsFile), requester="MRSuperRes",
                          skip_packages=PROTECTED_PACKAGES, prompt_install=askConfirmation)
        return
    if askConfirmation and not slicer.util.confirmOkCancelDisplay(
        "MRSuperRes needs these Python packages, which will be downloaded and installed now "
        f"(this may take a few minutes): {', '.join(unmet)}",
        "Install Python packages",
    ):
        raise RuntimeError(f"Required Python packages were not installed: {', '.join(unmet)}")
    slicer.util.pip_install(" ".join(f'"{requirement}"' for requirement in unmet))
    still = unmetRequirements(unmet)
    if still:
        raise RuntimeError(f"Installing {', '.join(still)} failed; see the Python console for pip's output.")


def ensureDependencies(askConfirmation=True):
    """torch (PyTorch extension) then requirements.txt; raises RuntimeError with a user-facing reason."""
    torch = ensureTorch(askConfirmation)
    ensureRequirements(askConfirmation)
    return torch


def formatDuration(seconds):
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def cudaStatus():
    """(available, device name, free bytes, total bytes); (False, "", 0, 0) without a usable CUDA GPU."""
    if not torchInstalled():
        return False, "", 0, 0
    import torch

    if not torch.cuda.is_available():
        return False, "", 0, 0
    free, total = torch.cuda.mem_get_info()
    return True, torch.cuda.get_device_name(), int(free), int(total)


def deviceMessage(device, cudaAvailable, gpuName="", freeBytes=0, requiredBytes=None, cpuSeconds=None,
                  gpuSeconds=None):
    """What the user should know before running on the chosen device (empty string when nothing to say).

    cpuSeconds / gpuSeconds: expected run times from the model catalogue's measurements (None if unknown);
    requiredBytes: estimated GPU memory need of one batch.
    """
    messages = []
    if device == "cuda" and not cudaAvailable:
        raise ValueError("Device 'cuda' was chosen but no CUDA GPU is available (check the NVIDIA driver and that "
                         "the PyTorch extension installed a CUDA build); choose 'auto' or 'cpu'.")
    runsOnCpu = device == "cpu" or (device == "auto" and not cudaAvailable)
    if runsOnCpu:
        reason = "No CUDA GPU found" if device == "auto" else "CPU chosen"
        estimate = f"; expect about {formatDuration(cpuSeconds)} for this volume" if cpuSeconds else ""
        messages.append(f"{reason}: running on the CPU{estimate}.")
    else:
        estimate = f" (about {formatDuration(gpuSeconds)})" if gpuSeconds else ""
        name = f" {gpuName}" if gpuName else ""
        messages.append(f"Running on the GPU{name}{estimate}.")
        if requiredBytes and freeBytes and requiredBytes > freeBytes:
            messages.append(
                f"Only {freeBytes / 2**30:.1f} GiB of GPU memory is free and a batch needs about "
                f"{requiredBytes / 2**30:.1f} GiB: smaller batches will be used, then the CPU if that still fails "
                "(lower 'Batch size' under Advanced, or close other GPU programs)."
            )
    return " ".join(messages)


def expectedSeconds(secondsPerMegavoxel, outputVoxels):
    """Run time predicted from a per-megavoxel timing of the catalogue (None when unknown)."""
    if not secondsPerMegavoxel or not math.isfinite(secondsPerMegavoxel):
        return None
    return secondsPerMegavoxel * outputVoxels / 1e6


def expectedRunSeconds(dimensions, scale, modelId=None, modelsDir=None):
    """(CPU seconds, GPU seconds) expected for a volume of dimensions (i, j, k) from the measured timings of
    the model catalogue: entry "timing": {"cpu_seconds_per_megavoxel": ..., "cuda_seconds_per_megavoxel": ...}
    (of output voxels, measured super-resolving). Denoising (scale 1) has rates of its own where measured,
    "cpu_denoise_seconds_per_megavoxel" / "cuda_denoise_...": per output voxel it costs 2-3 x more, because the
    data-consistency step works on the input's voxels and filters groups of similar blocks there. Each is None
    when the catalogue has no measurement for that device."""
    from MRSuperResLib import model_catalog

    outputVoxels = math.prod(int(n) for n in dimensions) * int(scale) ** 2
    seconds = []
    for device in ("cpu", "cuda"):
        info = model_catalog.get_model(modelId or None, device, modelsDir)
        timing = info.details.get("timing", {})
        rate = timing.get(f"{device}_denoise_seconds_per_megavoxel") if int(scale) == 1 else None
        seconds.append(expectedSeconds(rate or timing.get(f"{device}_seconds_per_megavoxel"), outputVoxels))
    return tuple(seconds)
