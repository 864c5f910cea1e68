"""Feature sets: featurekit and the reference sets (Essentia, openSMILE) as store branches."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from featurekit.computers.handcrafted import HandcraftedBranch
from featurekit.computers.runner import run_branch
from featurekit.computers.sets import FEATURE_SETS, parse_sets, set_columns, set_computer
from featurekit.datasets import load_dataset
from featurekit.errors import ConfigError, MissingDependencyError, StoreError
from featurekit.store.reader import FeatureStore

SR = 22050


def tone_file(path: Path, seconds: float = 1.0, amplitude: float = 0.3) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    y = amplitude * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    soundfile.write(path, y, SR)
    return path


# -- names, columns, computers --------------------------------------------------------------
def test_parse_sets_checks_names() -> None:
    assert parse_sets("featurekit, essentia") == ("featurekit", "essentia")
    with pytest.raises(ConfigError, match="unknown feature set 'vggish'"):
        parse_sets("featurekit,vggish")
    with pytest.raises(ConfigError, match="repeat"):
        parse_sets(["essentia", "essentia"])
    with pytest.raises(ConfigError, match="at least one"):
        parse_sets(" , ")


def test_set_columns_by_family_or_prefix() -> None:
    columns = ["pitch.f0_hz.median", "loudness.range_lu.value", "essentia.hfc.mean",
               "opensmile.egemaps.x.amean", "opensmile.compare.y.range", "neural.m.emb_000"]
    assert set_columns("featurekit", columns) == columns[:2]
    assert set_columns("essentia", columns) == ["essentia.hfc.mean"]
    assert set_columns("opensmile.egemaps", columns) == ["opensmile.egemaps.x.amean"]


def test_set_computer_options() -> None:
    assert isinstance(set_computer("featurekit"), HandcraftedBranch)
    assert {s.branch for s in FEATURE_SETS.values()} == {
        "handcrafted", "essentia", "opensmile.egemaps", "opensmile.compare"}
    with pytest.raises(ConfigError, match="apply to the featurekit set"):
        set_computer("opensmile.egemaps", extraction=HandcraftedBranch().config)
    with pytest.raises(ConfigError, match="clip-level functionals only"):
        set_computer("opensmile.egemaps", frames=True)


@pytest.mark.parametrize(("name", "module", "extra"), [
    ("essentia", "essentia", "essentia"),
    ("opensmile.egemaps", "opensmile", "opensmile"),
    ("opensmile.compare", "opensmile", "opensmile")])
def test_missing_engine_names_the_extra(monkeypatch: pytest.MonkeyPatch, name: str,
                                        module: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependencyError, match=rf"featurekit\[{extra}\]"):
        set_computer(name)


# -- the reference sets' values -------------------------------------------------------------
@pytest.mark.parametrize("name", ["essentia", "opensmile.egemaps"])
def test_reference_set_values(tmp_path: Path, name: str) -> None:
    pytest.importorskip(FEATURE_SETS[name].extra)
    computer = set_computer(name)
    names = computer.feature_names
    assert len(names) == len(set(names))
    assert all(n.startswith(f"{name}.") and n[len(name) + 1:].count(".") == 1 for n in names)
    tone, short = tone_file(tmp_path / "tone.wav"), tone_file(tmp_path / "short.wav", 0.02)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(SR // 2), SR)
    results = computer.compute_batch([str(tone), str(short), str(silent),
                                      str(tmp_path / "missing.wav")])
    assert all(r.values.shape == (len(names),) for r in results[:3])
    assert np.all(np.isfinite(results[0].values))
    assert isinstance(results[3], Exception)  # recorded per clip, never raised
    # Arrays at their rate give the file's values, whatever was computed before (a fresh
    # engine after pickling, and the same engine after other clips).
    y, _ = soundfile.read(tone)
    again = pickle.loads(pickle.dumps(computer)).compute_batch([y], sr=SR)[0]
    np.testing.assert_allclose(again.values, results[0].values, rtol=1e-5, atol=1e-6)
    again = computer.compute_batch([y], sr=SR)[0]
    np.testing.assert_allclose(again.values, results[0].values, rtol=1e-5, atol=1e-6)
    provenance = computer.provenance()
    assert provenance["config_hash"] == computer.config_hash()
    assert provenance["config"]["engine_version"] == provenance["versions"][
        FEATURE_SETS[name].extra]


def test_reference_set_branch_is_resumable_with_errors_and_provenance(
        tmp_path: Path, urbansound8k_dir: Path) -> None:
    pytest.importorskip("opensmile")
    dataset = load_dataset("urbansound8k", urbansound8k_dir)
    computer = set_computer("opensmile.egemaps")
    store = FeatureStore(tmp_path / "store")
    first = run_branch(computer, dataset, store, progress=False)
    assert first.done + first.failed == len(dataset.clips)
    again = run_branch(computer, dataset, store, progress=False)
    assert again.done == 0 and again.skipped == first.done
    assert store.provenance(dataset.name, "opensmile.egemaps")["config_hash"] == \
        computer.config_hash()
    assert len(store.errors(dataset.name, "opensmile.egemaps")) == first.failed
    assert store.feature_names(dataset.name, "opensmile.egemaps") == computer.feature_names


def test_old_descriptor_version_is_refused_with_the_reason(
        tmp_path: Path, urbansound8k_dir: Path) -> None:
    dataset = load_dataset("urbansound8k", urbansound8k_dir)
    store = FeatureStore(tmp_path / "store")

    class OldBranch(HandcraftedBranch):
        def config_hash(self) -> str:
            return "0123456789abcdef"

        def provenance(self) -> dict:
            return {**super().provenance(), "descriptor_version": 3}

    run_branch(OldBranch(HandcraftedBranch().config.replace(families=("spectral",))),
               dataset, store, progress=False)
    with pytest.raises(StoreError, match=r"descriptor version 3 -> 4.*--overwrite"):
        run_branch(HandcraftedBranch(), dataset, store, progress=False)


@pytest.mark.filterwarnings("ignore:urbansound8k. partial copy")
def test_extract_command_takes_a_set(tmp_path: Path, urbansound8k_dir: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("opensmile")
    from featurekit.cli import main

    base = ["extract", "--dataset", "urbansound8k", "--data-dir", str(urbansound8k_dir),
            "--store", str(tmp_path / "store")]
    assert main([*base, "--set", "opensmile.egemaps"]) == 0
    assert "urbansound8k/opensmile.egemaps" in capsys.readouterr().out
    assert FeatureStore(tmp_path / "store").branches("urbansound8k") == ["opensmile.egemaps"]
    assert main([*base, "--set", "opensmile.egemaps", "--families", "pitch"]) == 2
    assert "apply to the featurekit set" in capsys.readouterr().err
    assert main([*base, "--set", "opensmile.egemaps", "--frames"]) == 2
