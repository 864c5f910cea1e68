"""Dataset manifests: the shipped ones hold the public facts; broken ones are refused clearly."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
from fixtures_audio import ESC10_CLASSES, ESC50_TARGETS, URBANSOUND8K_CLASSES

from featurekit.datasets import load_manifest
from featurekit.datasets.manifest import manifest_dir, parse_manifest, read_manifest_file
from featurekit.errors import DatasetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO_MANIFESTS = Path(__file__).resolve().parents[1] / "data_manifests"


def test_urbansound8k_manifest_facts() -> None:
    manifest = load_manifest("urbansound8k")
    assert manifest.archive.md5 == "9aa69802bbf37fb986f71ec1483a196e"
    assert manifest.archive.size == 6023741708
    assert "zenodo.org/records/1203745/files/UrbanSound8K.tar.gz" in manifest.archive.url
    assert manifest.expected_clips == 8732
    assert manifest.fold_counts == dict(zip(range(1, 11), (873, 888, 925, 990, 936, 823, 838,
                                                           806, 816, 837)))
    assert manifest.classes == URBANSOUND8K_CLASSES
    assert manifest.official_ids == tuple(range(10))
    assert manifest.protocol == "leave-one-fold-out"
    assert manifest.layout.metadata == "metadata/UrbanSound8K.csv"
    assert "salience" in manifest.layout.extra_columns
    assert "Salamon" in manifest.citation and "CC BY-NC" in manifest.license


def test_esc50_and_esc10_manifests() -> None:
    esc50, esc10 = load_manifest("esc50"), load_manifest("esc10")
    assert esc50.expected_clips == 2000 and len(esc50.classes) == 50
    assert esc50.fold_counts == {fold: 400 for fold in range(1, 6)}
    assert all(esc50.classes[target] == name for name, target in ESC50_TARGETS.items())
    assert esc50.archive.md5 is None and esc50.archive.sha256 is None
    assert "no published checksum" in esc50.archive.checksum_note.lower()
    assert esc10.parent == "esc50" and esc10.archive == esc50.archive
    assert esc10.layout == esc50.layout
    assert esc10.expected_clips == 400 and esc10.fold_counts == {f: 80 for f in range(1, 6)}
    assert esc10.classes == ESC10_CLASSES
    assert esc10.official_ids == tuple(ESC50_TARGETS[name] for name in ESC10_CLASSES)
    assert esc10.row_filter == ("esc10", "True")


def test_manifests_are_found_in_the_checkout() -> None:
    # Editable installs read the repository's data_manifests/; a wheel ships a copy inside
    # the package (featurekit/data_manifests), looked at first.
    found = manifest_dir()
    assert sorted(p.name for p in found.glob("*.toml")) == ["esc50.toml", "urbansound8k.toml"]
    assert found.resolve() == REPO_MANIFESTS or found.parent.name == "featurekit"


def _valid() -> dict:
    return tomllib.loads((REPO_MANIFESTS / "urbansound8k.toml").read_text())


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.pop("citation"), "citation: missing"),
    (lambda d: d.update(format_version=2), "unsupported version 2"),
    (lambda d: d["archive"].update(md5="XYZ"), r"archive\.md5: expected 32 lower-case hex"),
    (lambda d: d["archive"].update(url="ftp://x/y"), "expected an http"),
    (lambda d: d["archive"].update(filename="../x.tar.gz"), "plain file name"),
    (lambda d: d["counts"].update(clips=8000), "sums to 8732, but clips = 8000"),
    (lambda d: d["counts"].update(per_fold=[1, 2]), "has 2 entries for 10 folds"),
    (lambda d: d["classes"].update(names=["a", "a"]), "has duplicates"),
    (lambda d: d["layout"].update(label_column="label"), "'label' is not in columns"),
    (lambda d: d["layout"].update(audio_path="audio/{nope}"), "audio_path: must use"),
    (lambda d: d["protocol"].update(folds="1-10"), r"protocol\.folds: expected list"),
    (lambda d: d.update(name="Urban Sound"), "must be lower-case"),
])
def test_broken_manifest_is_refused_with_key(edit, message) -> None:
    data = copy.deepcopy(_valid())
    edit(data)
    with pytest.raises(DatasetError, match=message) as info:
        parse_manifest(data, source="test.toml")
    assert "manifest test.toml" in str(info.value)


def test_unreadable_manifest_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("name = [unclosed")
    with pytest.raises(DatasetError, match=f"manifest {path}: cannot read"):
        read_manifest_file(path)


def test_subset_overrides_are_validated() -> None:
    data = tomllib.loads((REPO_MANIFESTS / "esc50.toml").read_text())
    data["subsets"]["esc10"]["classes"]["official_ids"] = [0, 1]
    with pytest.raises(DatasetError, match=r"subsets\.esc10 .*official_ids"):
        parse_manifest(data, source="esc50.toml")


def test_unknown_manifest_name() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'esc20'; known datasets: esc10"):
        load_manifest("esc20")
