"""What the Slicer module checks and says before it runs: requirements.txt parsing, version checks, and the
device / run-time / GPU-memory messages (the installers themselves only run inside Slicer)."""

import importlib.metadata

import pytest

from MRSuperResLib import dependencies


def test_requirements_file_lists_monai_but_never_torch():
    requirements = dependencies.readRequirements()
    assert any(r.startswith("monai>=") for r in requirements)
    assert not any(r.split(">")[0].split("=")[0].strip().lower() == "torch" for r in requirements)


def test_read_requirements_skips_comments_options_and_blank_lines(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n\n-r other.txt\nmonai>=1.4  # inline\n  scipy \n")
    assert dependencies.readRequirements(path) == ["monai>=1.4", "scipy"]


def test_unmet_requirements_compare_installed_versions():
    monai = importlib.metadata.version("monai")
    major = int(monai.split(".")[0])
    met = [f"monai>={major}.0", "numpy", f"monai<{major + 1}", f"monai=={monai}", f"monai~={major}.0"]
    unmet = [f"monai>={major + 1}", "surely-not-an-installed-distribution>=1", f"monai!={monai}", f"monai<{major}"]
    assert dependencies.unmetRequirements(met + unmet) == unmet


def test_versions_compare_numerically_not_as_text():
    assert dependencies._satisfies("2.13.0+cpu", ">=", "2.1")
    assert not dependencies._satisfies("2.9.1", ">=", "2.10")
    assert dependencies._satisfies("1.10", ">", "1.9")


def test_unparsable_requirement_names_it():
    with pytest.raises(ValueError, match="'monai>>1'"):
        dependencies.unmetRequirements(["monai>>1"])


def test_torch_of_this_environment_meets_the_requirement():
    assert dependencies.torchInstalled()
    assert dependencies.unmetRequirements([f"torch{dependencies.TORCH_REQUIREMENT}"]) == []
    assert dependencies.ensureTorch().__name__ == "torch"  # installed: no PyTorch extension needed


def test_cpu_message_says_so_with_the_expected_time():
    message = dependencies.deviceMessage("auto", cudaAvailable=False, cpuSeconds=150)
    assert message == "No CUDA GPU found: running on the CPU; expect about 2 min for this volume."
    assert dependencies.deviceMessage("cpu", cudaAvailable=True, cpuSeconds=None) == "CPU chosen: running on the CPU."


def test_gpu_messages():
    assert dependencies.deviceMessage("auto", True, "NVIDIA H100", gpuSeconds=3) == \
        "Running on the GPU NVIDIA H100 (about 3 s)."
    short = dependencies.deviceMessage("cuda", True, "T4", freeBytes=2 * 2**30, requiredBytes=6 * 2**30)
    assert "Only 2.0 GiB of GPU memory is free" in short and "about 6.0 GiB" in short and "CPU" in short
    with pytest.raises(ValueError, match="no CUDA GPU"):
        dependencies.deviceMessage("cuda", cudaAvailable=False)


def test_cuda_status_on_this_machine_matches_torch():
    import torch

    available, name, free, total = dependencies.cudaStatus()
    assert available == torch.cuda.is_available()
    if not available:
        assert (name, free, total) == ("", 0, 0)
    else:
        assert name and 0 < free <= total


@pytest.mark.parametrize(("seconds", "text"), [(0.2, "1 s"), (42, "42 s"), (89, "89 s"), (600, "10 min"),
                                                (7200, "2.0 h")])
def test_format_duration(seconds, text):
    assert dependencies.formatDuration(seconds) == text


def test_expected_run_time_comes_from_the_catalogue_timing(tmp_path):
    import json
    import shutil

    from MRSuperResLib import model_catalog

    models = tmp_path / "models"
    shutil.copytree(model_catalog.DEFAULT_MODELS_DIR, models)
    catalogue = json.loads((models / "Models.json").read_text())
    for entry in catalogue["models"]:
        entry.pop("timing", None)
    (models / "Models.json").write_text(json.dumps(catalogue))
    assert dependencies.expectedRunSeconds((256, 256, 20), 2, modelsDir=models) == (None, None)  # not measured
    for index, entry in enumerate(catalogue["models"]):  # distinct timings: each estimate names its model
        entry["timing"] = {"cpu_seconds_per_megavoxel": 2.0 + index, "cuda_seconds_per_megavoxel": 0.01 * (index + 1)}
    (models / "Models.json").write_text(json.dumps(catalogue))
    timing = {e["id"]: e["timing"] for e in catalogue["models"]}
    cpuDefault = model_catalog.get_model(None, "cpu", models).id
    gpuDefault = model_catalog.get_model(None, "cuda", models).id
    assert cpuDefault != gpuDefault
    cpu, gpu = dependencies.expectedRunSeconds((256, 256, 20), 2, modelsDir=models)
    megavoxels = 256 * 256 * 20 * 4 / 1e6  # output voxels
    assert cpu == pytest.approx(timing[cpuDefault]["cpu_seconds_per_megavoxel"] * megavoxels)  # each device's default
    assert gpu == pytest.approx(timing[gpuDefault]["cuda_seconds_per_megavoxel"] * megavoxels)
    # An explicitly chosen model is used on both devices.
    chosen = next(e["id"] for e in catalogue["models"] if not e["default_for"])
    assert dependencies.expectedRunSeconds((256, 256, 20), 2, chosen, models) == pytest.approx(
        (timing[chosen]["cpu_seconds_per_megavoxel"] * megavoxels, timing[chosen]["cuda_seconds_per_megavoxel"] * megavoxels))


def test_expected_denoising_time_uses_its_own_rate_where_measured(tmp_path):
    import json
    import shutil

    from MRSuperResLib import model_catalog

    models = tmp_path / "models"
    shutil.copytree(model_catalog.DEFAULT_MODELS_DIR, models)
    catalogue = json.loads((models / "Models.json").read_text())
    for entry in catalogue["models"]:
        entry["timing"] = {"cpu_seconds_per_megavoxel": 1.0, "cuda_seconds_per_megavoxel": 0.01}
    chosen, other = catalogue["models"][0], catalogue["models"][1]
    chosen["timing"].update(cpu_denoise_seconds_per_megavoxel=3.0, cuda_denoise_seconds_per_megavoxel=0.05)
    (models / "Models.json").write_text(json.dumps(catalogue))
    megavoxels = 256 * 256 * 20 / 1e6
    assert dependencies.expectedRunSeconds((256, 256, 20), 1, chosen["id"], models) == pytest.approx(
        (3.0 * megavoxels, 0.05 * megavoxels))
    assert dependencies.expectedRunSeconds((256, 256, 20), 2, chosen["id"], models) == pytest.approx(
        (1.0 * 4 * megavoxels, 0.01 * 4 * megavoxels))  # super-resolving keeps the general rate
    assert dependencies.expectedRunSeconds((256, 256, 20), 1, other["id"], models) == pytest.approx(
        (1.0 * megavoxels, 0.01 * megavoxels))  # no denoising rate measured: the general one
