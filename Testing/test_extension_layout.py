"""The extension is packaged from its CMakeLists.txt files: a file that is not listed there is silently missing
from the installed extension ("works from source, broken when installed"). These tests compare the listings
with the module folders, and check the extension metadata and the catalog entry."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["MRQualityMetrics", "MRSuperRes"]
IGNORED_PARTS = {"__pycache__", "Testing"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}


def cmake_list(cmake_text, variable, module_name):
    """Entries of `set(<variable> ...)`, comments removed and ${MODULE_NAME} expanded."""
    without_comments = "\n".join(line.split("#", 1)[0] for line in cmake_text.splitlines())
    match = re.search(r"set\(\s*" + re.escape(variable) + r"\b(.*?)\)", without_comments, re.DOTALL)
    if match is None:
        raise AssertionError(f"set({variable} ...) not found")
    return [token.replace("${MODULE_NAME}", module_name) for token in match.group(1).split()]


def module_files(module_dir):
    """Files that must ship: everything in the module folder but CMakeLists.txt, caches, hidden files, Testing/."""
    files = []
    for path in module_dir.rglob("*"):
        relative = path.relative_to(module_dir)
        if not path.is_file() or relative.as_posix() == "CMakeLists.txt":
            continue
        if IGNORED_PARTS & set(relative.parts) or path.suffix in IGNORED_SUFFIXES:
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue
        files.append(relative.as_posix())
    return sorted(files)


def listing(module):
    text = (ROOT / module / "CMakeLists.txt").read_text()
    return cmake_list(text, "MODULE_PYTHON_SCRIPTS", module), cmake_list(text, "MODULE_PYTHON_RESOURCES", module)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_file_is_listed_in_cmake(module):
    scripts, resources = listing(module)
    present = module_files(ROOT / module)
    unlisted_scripts = [f for f in present if f.endswith(".py") and f not in scripts]
    unlisted_resources = [f for f in present if not f.endswith(".py") and f not in resources]
    message = []
    if unlisted_scripts:
        message.append("add under MODULE_PYTHON_SCRIPTS:\n" + "\n".join(f"  {f}" for f in unlisted_scripts))
    if unlisted_resources:
        message.append("add under MODULE_PYTHON_RESOURCES:\n" + "\n".join(f"  {f}" for f in unlisted_resources))
    assert not message, f"{module}/CMakeLists.txt is missing files:\n" + "\n".join(message)


@pytest.mark.parametrize("module", MODULES)
def test_every_listed_file_exists_and_has_the_right_kind(module):
    scripts, resources = listing(module)
    missing = [f for f in scripts + resources if not (ROOT / module / f).is_file()]
    assert not missing, f"{module}/CMakeLists.txt lists files that do not exist:\n" + "\n".join(missing)
    assert all(f.endswith(".py") for f in scripts), f"{module}: non-Python file under SCRIPTS"
    assert not any(f.endswith(".py") for f in resources), f"{module}: Python file under RESOURCES"
    duplicates = sorted({f for f in scripts + resources if (scripts + resources).count(f) > 1})
    assert not duplicates, f"{module}: listed twice: {duplicates}"


@pytest.mark.parametrize("module", MODULES)
def test_module_has_the_standard_layout(module):
    required = [
        f"{module}.py",
        f"{module}Lib/__init__.py",
        f"Resources/UI/{module}.ui",
        f"Resources/Icons/{module}.png",
        "Resources/requirements.txt",
    ]
    missing = [f for f in required if not (ROOT / module / f).is_file()]
    assert not missing, f"{module} lacks: {missing}"
    text = (ROOT / module / "CMakeLists.txt").read_text()
    assert re.search(r"slicerMacroBuildScriptedModule\(.*?NAME\s+\$\{MODULE_NAME\}.*?WITH_GENERIC_TESTS", text, re.DOTALL)
    assert re.search(r"set\(MODULE_NAME\s+" + module + r"\)", text)
    assert re.search(r"if\(BUILD_TESTING\).*?slicer_add_python_unittest\(SCRIPT \$\{MODULE_NAME\}\.py\)", text, re.DOTALL)


def test_icons_are_128_pixel_pngs():
    for path in [
        ROOT / "Resources/Icons/MRSuperRes.png",
        *(ROOT / module / "Resources/Icons" / f"{module}.png" for module in MODULES),
    ]:
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n", path
        width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
        assert (width, height) == (128, 128), path


def test_top_level_cmake_declares_a_slicer_extension():
    text = (ROOT / "CMakeLists.txt").read_text()
    for pattern in [
        r"cmake_minimum_required\(VERSION",
        r"project\(MRSuperRes\)",
        r'set\(EXTENSION_HOMEPAGE "https://github\.com/mrsuperres/SlicerMRSuperRes"\)',
        r'set\(EXTENSION_CATEGORY "Filtering"\)',
        r'set\(EXTENSION_CONTRIBUTORS "[^"]+"\)',
        r'set\(EXTENSION_DESCRIPTION "[^"]{20,}"\)',
        r'set\(EXTENSION_ICONURL "https://raw\.githubusercontent\.com/mrsuperres/SlicerMRSuperRes/[^"]+/Resources/Icons/MRSuperRes\.png"\)',
        r'set\(EXTENSION_SCREENSHOTURLS "https://[^"]+"\)',
        r'set\(EXTENSION_DEPENDS "PyTorch"\)',
        r"find_package\(Slicer REQUIRED\)",
        r"include\(\$\{Slicer_USE_FILE\}\)",
        r"add_subdirectory\(MRQualityMetrics\)",
        r"add_subdirectory\(MRSuperRes\)",
        r"include\(\$\{Slicer_EXTENSION_GENERATE_CONFIG\}\)",
        r"include\(\$\{Slicer_EXTENSION_CPACK\}\)",
    ]:
        assert re.search(pattern, text), f"top-level CMakeLists.txt lacks {pattern}"
    # Slicer needs the metadata and the modules before the packaging includes.
    assert text.index("find_package(Slicer REQUIRED)") < text.index("add_subdirectory(MRQualityMetrics)")
    assert text.index("add_subdirectory(MRSuperRes)") < text.index("include(${Slicer_EXTENSION_CPACK})")


def test_catalog_entry_matches_the_extensions_index_schema():
    entry = json.loads((ROOT / "Resources/ExtensionsIndex/MRSuperRes.json").read_text())
    assert set(entry) == {
        "$schema", "category", "scm_url", "scm_revision", "build_dependencies", "build_subdirectory", "tier",
    }
    assert entry["$schema"].startswith("https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/")
    assert entry["category"] == "Filtering"
    assert entry["scm_url"].startswith("https://github.com/mrsuperres/SlicerMRSuperRes")
    assert entry["build_dependencies"] == ["PyTorch"]
    assert entry["build_subdirectory"] == "."
    assert isinstance(entry["tier"], int) and 1 <= entry["tier"] <= 5
