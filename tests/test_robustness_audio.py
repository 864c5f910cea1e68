"""Corrupted copies of clips: specs, per-clip seeding, known answers through the handcrafted
branch, and ``featurekit benchmark --corruptions`` end to end (store, report, reuse)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fixtures_audio import make_urbansound8k
from fixtures_models import FrameStats

from featurekit.cli import main
from featurekit.computers.corrupted import (
    CorruptedComputer,
    Corruption,
    clip_rng,
    parse_corruptions,
)
from featurekit.computers.factory import make_computer
from featurekit.errors import ConfigError
from featurekit.io.audio import load_audio
from featurekit.neural import register_model, registry
from featurekit.store.reader import FeatureStore

pytestmark = pytest.mark.filterwarnings("ignore::featurekit.datasets.DatasetWarning")


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------

def test_a_spec_gives_one_corruption_per_severity_in_order(tmp_path: Path) -> None:
    (tmp_path / "street").mkdir()
    sf.write(tmp_path / "street" / "a.wav", np.ones(800, dtype=np.float32) * 0.1, 8000)
    found = parse_corruptions(f"noise:snr=20/10/0, lowpass:hz=2000,gain:db=-30,"
                              f"background:dir={tmp_path / 'street'}:snr=5,reverb:rt60=0.6")
    assert [c.name for c in found] == ["noise-snr20", "noise-snr10", "noise-snr0",
                                       "lowpass-hz2000", "gain-db-30",
                                       "background-street-snr5", "reverb-rt600.6"]
    assert [c.severity for c in found[:3]] == ["snr=20", "snr=10", "snr=0"]
    assert found[5].background == (str((tmp_path / "street" / "a.wav").resolve()),)
    assert found[5].to_dict()["n_recordings"] == 1


@pytest.mark.parametrize(("spec", "message"), [
    ("", "no corruption given"),
    ("hiss:snr=3", "unknown corruption 'hiss'"),
    ("noise:db=3", r"write noise:snr=V1/V2/\.\.\. \(unknown db\)"),
    ("noise:snr", "write noise:snr="),
    ("noise:snr=ten", "'ten' is not a number"),
    ("noise:snr=nan", "not a finite number"),
    ("lowpass:hz=5", "lies outside 20 to 96000 Hz cutoff"),
    ("noise:snr=10/10", "noise-snr10 is given twice"),
    ("mp3:kbps=33", "33 kbit/s is no MP3"),
    ("background:snr=10", "name the recordings' folder with dir=PATH"),
    ("background:dir=/no/such/folder:snr=10", "does not exist"),
])
def test_bad_specs_are_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_corruptions(spec)


def test_a_background_folder_without_audio_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no audio here", encoding="utf-8")
    with pytest.raises(ConfigError, match="holds no audio file"):
        parse_corruptions(f"background:dir={tmp_path}:snr=10")


# --------------------------------------------------------------------------------------------
# Seeding and known answers
# --------------------------------------------------------------------------------------------

def noise_clip(path: Path, *, seconds: float = 2.0, sr: int = 22050, seed: int = 0) -> Path:
    """Broadband noise with a slow envelope: loud enough for every descriptor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.1 * rng.normal(size=t.size) * (1.0 + 0.5 * np.sin(2 * np.pi * 3 * t))
    sf.write(path, y.astype(np.float32), sr, subtype="FLOAT")
    return path


def test_a_clip_is_corrupted_alike_in_any_batch_and_folder(tmp_path: Path) -> None:
    noise = parse_corruptions("noise:snr=10")[0]
    assert np.array_equal(clip_rng(0, noise, "/a/b/x.wav").normal(size=4),
                          clip_rng(0, noise, "/elsewhere/x.wav").normal(size=4))
    assert not np.array_equal(clip_rng(0, noise, "x.wav").normal(size=4),
                              clip_rng(1, noise, "x.wav").normal(size=4))
    assert not np.array_equal(clip_rng(0, noise, "x.wav").normal(size=4),
                              clip_rng(0, noise, "y.wav").normal(size=4))
    paths = [str(noise_clip(tmp_path / f"c{k}.wav", seconds=1.0, seed=k)) for k in range(3)]
    computer = CorruptedComputer(make_computer("handcrafted"), noise, seed=0)
    together = computer.compute_batch(paths)
    alone = computer.compute_batch(paths[2:])
    np.testing.assert_array_equal(together[2].values, alone[0].values)
    clean = make_computer("handcrafted").compute_batch(paths[2:])
    assert not np.array_equal(clean[0].values, alone[0].values)


def test_a_clip_that_cannot_be_read_is_its_own_failure(tmp_path: Path) -> None:
    good = str(noise_clip(tmp_path / "good.wav", seconds=1.0))
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050, dtype=np.float32), 22050)
    computer = CorruptedComputer(make_computer("handcrafted"),
                                 parse_corruptions("noise:snr=10")[0], seed=0)
    outcomes = computer.compute_batch([str(tmp_path / "bad.wav"), good, str(silent)])
    assert isinstance(outcomes[0], Exception) and isinstance(outcomes[2], Exception)
    assert "SNR" in str(outcomes[2]) or "silent" in str(outcomes[2])
    assert np.isfinite(outcomes[1].values).all()


def handcrafted_values(computer, paths: list[str]) -> list[dict[str, float]]:
    names = computer.feature_names
    return [dict(zip(names, result.values.tolist(), strict=True))
            for result in computer.compute_batch(paths)]


def known_answer_clips(tmp_path: Path) -> list[str]:
    return [str(noise_clip(tmp_path / f"n{k}.wav", seed=k)) for k in range(2)]


def test_gain_moves_integrated_loudness_by_its_decibels(tmp_path: Path) -> None:
    check_gain(known_answer_clips(tmp_path))


def test_a_lowpassed_clip_rolls_off_below_its_cutoff(tmp_path: Path) -> None:
    check_lowpass(known_answer_clips(tmp_path))


def check_gain(paths: list[str]) -> None:
    clean = make_computer("handcrafted")
    quiet = CorruptedComputer(clean, parse_corruptions("gain:db=-30")[0], seed=0)
    column = next(name for name in clean.feature_names if "integrated_lufs" in name)
    quietest = next(name for name in clean.feature_names if "momentary_lufs.p10" in name)
    exact = 0
    for before, after in zip(handcrafted_values(clean, paths),
                             handcrafted_values(quiet, paths), strict=True):
        change = after[column] - before[column]
        # BS.1770's absolute gate (-70 LUFS) drops the 400-ms blocks a gain pushes below it,
        # which raises the mean of what is left: -30 LU exactly only while the blocks stay
        # above the gate (here: the quietest tenth of the clip's blocks above -40 LUFS).
        if before[quietest] - 30.0 > -70.0:
            assert change == pytest.approx(-30.0, abs=0.1), column
            exact += 1
        else:
            assert -30.1 <= change < 0.0, column
    assert exact, "no clip loud enough for the exact known answer"


def check_lowpass(paths: list[str]) -> None:
    clean = make_computer("handcrafted")
    lowpassed = CorruptedComputer(clean, parse_corruptions("lowpass:hz=2000")[0], seed=0)
    column = next(name for name in clean.feature_names if "rolloff85_hz" in name)
    for before, after in zip(handcrafted_values(clean, paths),
                             handcrafted_values(lowpassed, paths), strict=True):
        assert after[column] < 2000.0 < before[column] or before[column] < 2000.0


def real_clips(shared_data_dir: Path, count: int = 8) -> list[str]:
    clips = sorted(path for path in (shared_data_dir / "urbansound8k-subset").rglob("*")
                   if path.suffix in (".wav", ".flac"))
    assert clips, f"{shared_data_dir} holds no urbansound8k-subset clip (see its README.md)"
    return [str(path) for path in clips[:: max(1, len(clips) // count)][:count]]


def test_known_answers_on_real_clips(shared_data_dir: Path) -> None:
    paths = real_clips(shared_data_dir)
    check_gain(paths)
    check_lowpass(paths)
    noise = parse_corruptions("noise:snr=10")[0]
    for path in paths:
        y, sr = load_audio(path, sr=None)
        if not np.any(y):
            continue
        corrupted = noise.apply(y, sr, rng=clip_rng(0, noise, path))
        snr = 10 * np.log10(np.sum(y.astype(np.float64) ** 2)
                            / np.sum((corrupted - y).astype(np.float64) ** 2))
        assert snr == pytest.approx(10.0, abs=0.1), path


# --------------------------------------------------------------------------------------------
# The command, end to end
# --------------------------------------------------------------------------------------------

@pytest.fixture
def frame_stats(monkeypatch: pytest.MonkeyPatch) -> str:
    """A tiny registered network as the neural branch (this process only: --jobs 1)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setenv("FEATUREKIT_NO_PROGRESS", "1")
    register_model("frame_stats", FrameStats, sample_rate=8000, embedding_dim=4, version="1")
    return "frame_stats"


def test_the_command_scores_stores_reports_and_reuses_corrupted_copies(
        tmp_path: Path, frame_stats: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_urbansound8k(tmp_path / "data", clips_per_fold=6, duration=1.0)
    store = tmp_path / "store"
    command = ["benchmark", "--dataset", "urbansound8k", "--data-dir", str(data),
               "--store", str(store), "--model", frame_stats, "--heads", "logreg",
               "--fusions", "mean", "--ablation", "none", "--repeats", "1",
               "--bootstrap", "200", "--corruptions", "gain:db=-20,noise:snr=10/0"]
    assert main([*command, "--out", str(tmp_path / "first")]) == 0
    printed = capsys.readouterr()
    assert "under noise snr=0, primary: auto" in printed.out
    results = json.loads((tmp_path / "first" / "results.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in results["corruptions"]] == ["gain-db-20", "noise-snr10",
                                                            "noise-snr0"]
    assert {(e["name"], e["comparison"]) for e in results["robustness"]} == {
        (name, comparison) for name in ("gain-db-20", "noise-snr10", "noise-snr0")
        for comparison in ("primary", "synergy")}
    assert all(e["n_clips"] == 18 and e["n_missing"] == 0 for e in results["robustness"])
    report = (tmp_path / "first" / "report.md").read_text(encoding="utf-8")
    assert "## Robustness to corrupted test audio" in report and "robustness.png" in report
    assert (tmp_path / "first" / "robustness.png").stat().st_size > 0
    # Each corruption is a dataset of the store, with what made it in its provenance.
    feature_store = FeatureStore(store)
    assert {"urbansound8k@noise-snr10", "urbansound8k@gain-db-20"} <= set(
        feature_store.datasets())
    facts = feature_store.provenance("urbansound8k@noise-snr10", "handcrafted")
    assert facts["corruption"] == {"kind": "noise", "snr": 10.0, "unit": "dB SNR", "seed": 0}
    assert facts["clean_config_hash"] == feature_store.provenance(
        "urbansound8k", "handcrafted")["config_hash"] != facts["config_hash"]
    assert len(feature_store.read("urbansound8k@noise-snr0", "neural.frame_stats")) == 18
    stage = next(s for s in results["plan"]["stages"] if s["name"] == "corrupt")
    assert stage["estimated_s"] > 0 and stage["measured_s"] > 0
    assert stage["note"].startswith("3 corruption(s) of 18 test clips; gain-db-20: ")
    # A plan estimates a new corruption's copies from a few clips, and stores none of them.
    planned = [*command[:-1], "gain:db=-10", "--plan", "--out", str(tmp_path / "plan")]
    assert main(planned) == 0
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text(encoding="utf-8"))
    stage = next(s for s in plan["stages"] if s["name"] == "corrupt")
    assert stage["estimated_s"] > 0 and stage["measured_s"] is None
    assert "urbansound8k@gain-db-10" not in FeatureStore(store).datasets()
    capsys.readouterr()
    # A rerun computes nothing again and gives the same figures.
    assert main([*command, "--out", str(tmp_path / "second")]) == 0
    rerun = capsys.readouterr().err
    assert rerun.count("0 computed, 18 already stored") == 2 * 4  # 2 branches, clean + 3
    again = json.loads((tmp_path / "second" / "results.json").read_text(encoding="utf-8"))
    assert again["robustness"] == results["robustness"]


def test_the_command_refuses_what_it_cannot_corrupt(tmp_path: Path, urbansound8k_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    common = ["benchmark", "--dataset", "urbansound8k", "--data-dir", str(urbansound8k_dir),
              "--store", str(tmp_path / "store"), "--model", "none"]
    cases = [(["--corruptions", "hiss:snr=1"], "unknown corruption 'hiss'"),
             (["--corruptions", "noise:snr=10", "--heads", "seq"], "drop the sequence head"),
             (["--corruptions", "noise:snr=10", "--sets", "featurekit"],
              "drop --sets or --corruptions")]
    for extra, message in cases:
        assert main([*common, *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "store").exists() or not FeatureStore(tmp_path / "store").datasets()


def test_a_corruption_is_a_pure_function_of_seed_clip_and_kind() -> None:
    y = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)
    gain = Corruption("gain", -6.0)
    np.testing.assert_allclose(gain.apply(y, 8000, rng=np.random.default_rng(0)),
                               y * 10 ** (-6 / 20), rtol=1e-6)
    lowpass = Corruption("lowpass", 5000.0)  # above Nyquist: nothing to remove
    assert lowpass.apply(y, 8000, rng=np.random.default_rng(0)) is y
    mp3 = parse_corruptions("mp3:kbps=32")[0]
    coded = mp3.apply(y, 8000, rng=np.random.default_rng(0))  # 32 kbit/s: encoded at 16 kHz
    assert coded.shape == y.shape and coded.dtype == np.float32
    assert np.corrcoef(coded, y)[0, 1] > 0.95
