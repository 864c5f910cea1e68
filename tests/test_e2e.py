"""The end-to-end stream (log-mel branch, CNN from scratch) and learning curves."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import soundfile as sf
from fixtures_features import feature_frame, full_label
from sklearn.base import clone

from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.curves import subsample_training
from featurekit.benchmark.data import prepare_data
from featurekit.benchmark.plan import make_plan, oof_feature_target
from featurekit.computers.logmel import LogMelBranch
from featurekit.errors import ConfigError
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.torch.e2e import E2EClassifier
from featurekit.names import E2E_BRANCH, E2E_HEAD

TINY = {"channels": (4, 8, 8, 16), "max_epochs": 4, "batch_size": 16, "freq_mask_bands": 1}


def band_sequences(y: np.ndarray, *, n_frames: int = 24, n_bands: int = 8,
                   seed: int = 0) -> np.ndarray:
    """Log-mel-like sequences whose class is the band that carries extra energy; every third
    clip is shorter (NaN-padded)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(y.size, n_frames, n_bands)).astype(np.float32)
    X[np.arange(y.size), :, y] += 3.0
    X[::3, n_frames // 2:] = np.nan
    return X


# --------------------------------------------------------------------------------------------
# The log-mel branch
# --------------------------------------------------------------------------------------------

def test_logmel_branch_puts_a_tone_in_its_mel_band_and_records_failures(tmp_path) -> None:
    sr = 22050
    t = np.arange(int(1.5 * sr)) / sr
    tone = tmp_path / "tone.wav"
    sf.write(tone, 0.5 * np.sin(2 * np.pi * 1000.0 * t), sr)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not audio at all")
    branch = LogMelBranch()
    result, failure = branch.compute_batch([str(tone), str(broken)], frames=True)
    assert result.values[0] == pytest.approx(1.5, abs=1e-3)
    frames = result.frames
    assert list(frames.columns[:2]) == ["time_s", "logmel.band_00"]
    assert frames.shape == (1 + int(1.5 * 16000) // 320, 1 + 64)
    assert np.diff(frames["time_s"].to_numpy()) == pytest.approx(0.02, abs=1e-6)
    # The loudest band of the steady part holds 1 kHz (mel scale on 0-8 kHz, 64 bands).
    from featurekit.dsp.filterbanks import hz_to_mel

    edges = np.linspace(0.0, float(hz_to_mel(np.array(8000.0))), 66)
    loudest = int(np.median(frames.iloc[10:-10, 1:].to_numpy().argmax(axis=1)))
    assert edges[loudest] <= hz_to_mel(np.array(1000.0)) <= edges[loudest + 2]
    assert isinstance(failure, Exception)
    assert LogMelBranch(n_mels=32).config_hash() != branch.config_hash()


# --------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------

def test_cnn_learns_which_band_is_loud_and_is_deterministic_on_cpu() -> None:
    y = np.arange(96) % 4
    X = band_sequences(y)
    groups = np.arange(96) // 2
    test = band_sequences(y, seed=1)
    learner = E2EClassifier(**{**TINY, "max_epochs": 15, "patience": 15}, mixup_alpha=0.0,
                            random_state=3).fit(X, y, groups=groups)
    assert np.mean(learner.predict(test) == y) > 0.9
    # Mixup, masks and shifts draw from the seed: the same seed gives the same network.
    first = E2EClassifier(**TINY, device="cpu", random_state=3).fit(X, y, groups=groups)
    second = E2EClassifier(**TINY, device="cpu", random_state=3).fit(X, y, groups=groups)
    np.testing.assert_array_equal(first.predict_proba(test), second.predict_proba(test))
    other = E2EClassifier(**TINY, device="cpu", random_state=4).fit(X, y, groups=groups)
    assert not np.array_equal(first.predict_proba(test), other.predict_proba(test))
    assert 1 <= first.best_epoch_ <= first.n_epochs_ <= TINY["max_epochs"]


def test_cnn_frames_embeddings_and_input_checks() -> None:
    y = np.arange(24) % 2
    X = band_sequences(y, n_frames=20)
    model = E2EClassifier(**TINY, random_state=0).fit(X, y)
    frames = model.frames(X)
    # 20 frames padded to 24, one output frame per 8 input frames; the short clips (10 real
    # frames) have 2 real output frames, the rest NaN.
    assert frames.shape == (24, 3, 16)
    assert np.isnan(frames[0, 2:]).all() and np.isfinite(frames[0, :2]).all()
    assert np.isfinite(frames[1]).all()
    assert model.transform(X).shape == (24, 32)
    assert model.predict_proba(X).sum(axis=1) == pytest.approx(np.ones(24))
    with pytest.raises(ValueError, match="3-D"):
        model.predict(X[:, :, 0])
    with pytest.raises(ValueError, match="bands"):
        model.predict(X[:, :, :4])
    with pytest.raises(ValueError, match="2 classes"):
        E2EClassifier(**TINY).fit(X, np.zeros(24))
    assert clone(model).get_params() == model.get_params()
    assert not hasattr(clone(model), "network_")


def test_default_network_stays_under_a_million_parameters() -> None:
    y = np.arange(400) % 200
    model = E2EClassifier(max_epochs=1, batch_size=200).fit(
        np.zeros((400, 16, 64), np.float32), y)
    assert model.n_parameters_ < 1_000_000


# --------------------------------------------------------------------------------------------
# The benchmark: e2e as a branch, and learning curves
# --------------------------------------------------------------------------------------------

def _frame_and_sequences(n_clips: int = 60):
    frame = feature_frame(n_clips=n_clips, n_folds=3, n_classes=3,
                          widths={"pitch": 4, "timbre": 4, "neural.tiny": 6},
                          signal={"pitch": (full_label, 1.0), "neural.tiny": (full_label, 1.5)})
    frame.insert(4, "recording", [f"rec{i // 2}" for i in range(n_clips)])
    return frame, {E2E_BRANCH: band_sequences(frame["label_id"].to_numpy(), n_bands=6)}


def test_the_e2e_branch_has_one_head_and_only_probability_fusions() -> None:
    frame, sequences = _frame_and_sequences()
    config = BenchmarkConfig(heads=("logreg", "xgb"))
    data = prepare_data(frame, config, sequences=sequences)
    assert data.branches[-1] == E2E_BRANCH and data.positions[E2E_BRANCH].size == 0
    plan = make_plan(data.branches, config, data.folds, sequence_branches=list(data.sequences))
    names = [system.name for system in plan.systems]
    assert [n for n in names if n.startswith("e2e/")] == ["e2e/cnn"]
    with_e2e = [s for s in plan.systems if E2E_BRANCH in s.branches and len(s.branches) > 1]
    assert with_e2e and all(s.fusion != "early" for s in with_e2e)
    # oof_features extends columns (the pretrained branch's, else the handcrafted ones), never
    # the CNN, which has none.
    assert all(E2E_BRANCH not in oof_feature_target(s.branches) for s in with_e2e)
    assert all(oof_feature_target(s.branches) == ("neural.tiny",) for s in with_e2e
               if s.fusion == "oof_features" and "neural.tiny" in s.branches)
    assert {u.head for u in plan.units if u.branches == (E2E_BRANCH,)} == {E2E_HEAD}
    assert all(E2E_BRANCH not in u.branches or u.head == E2E_HEAD or u.kind != "branch"
               for u in plan.units)
    comparisons = {c.branch: c for c in plan.branch_comparisons}
    assert comparisons[E2E_BRANCH].reference_candidates == ["e2e/cnn"]
    assert comparisons[E2E_BRANCH].branches == ("pitch", "timbre", E2E_BRANCH)
    assert comparisons["neural.tiny"].branches == ("pitch", "timbre", "neural.tiny")


def test_subsampling_keeps_whole_recordings_of_every_class() -> None:
    y = np.repeat(np.arange(4), 40)
    groups = np.repeat(np.arange(80), 2)
    kept = subsample_training(y, groups, 0.25, random_state=(0, 1, 2))
    assert set(np.unique(y[kept])) == {0, 1, 2, 3}
    # 20 recordings per class, ceil(0.25 * 20) = 5 drawn in each, both clips of each.
    assert kept.size == 4 * 5 * 2
    assert np.all(np.isin(groups, groups[kept]) == np.isin(np.arange(160), kept))
    again = subsample_training(y, groups, 0.25, random_state=(0, 1, 2))
    np.testing.assert_array_equal(kept, again)
    other = subsample_training(y, groups, 0.25, random_state=(0, 1, 3))
    assert not np.array_equal(kept, other)
    assert subsample_training(y, groups, 1.0, random_state=0).size == 160
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        subsample_training(y, groups, 0.0, random_state=0)


def test_learning_curve_results_follow_the_contract() -> None:
    frame, sequences = _frame_and_sequences()
    heads = {E2E_HEAD: HeadSpec(E2E_HEAD, functools.partial(E2EClassifier, **TINY),
                                seeded=True)}
    config = BenchmarkConfig(heads=("logreg",), repeats=2, n_bootstrap=200,
                             train_fractions=(0.5, 1.0))
    results = run_benchmark(frame, dataset="synthetic", config=config, head_specs=heads,
                            sequences=sequences, progress=False)
    curve = results["learning_curve"]
    assert [(e["fraction"], e["branch"]) for e in curve] == [
        (0.5, "neural.tiny"), (0.5, E2E_BRANCH), (1.0, "neural.tiny"), (1.0, E2E_BRANCH)]
    systems = {s["name"]: s for s in results["systems"]}
    for entry in curve:
        assert {"fraction", "system", "reference", "accuracy", "reference_accuracy",
                "gain_pp", "ci95_pp"} <= set(entry)
        assert 0.0 <= entry["accuracy"] <= 1.0 and 0.0 <= entry["reference_accuracy"] <= 1.0
        assert entry["gain_pp"] == pytest.approx(
            100 * (entry["accuracy"] - entry["reference_accuracy"]))
        low, high = entry["ci95_pp"]
        assert low <= entry["gain_pp"] <= high
    half, full = curve[1], curve[3]
    assert half["system"] == full["system"] == "auto(pitch+timbre+e2e)"
    assert half["reference"] == "auto(e2e)"
    # 40 training clips (20 recordings of 2) per outer fold; half the recordings of each
    # class, rounded up.
    assert full["train_clips"] == 40 and 20 <= half["train_clips"] < 40
    # Fraction 1 is the full benchmark's own comparison.
    assert full == {"fraction": 1.0, **results["branch_comparisons"][1], "train_clips": 40.0}
    assert full["accuracy"] == systems["auto(pitch+timbre+e2e)"]["mean"]["accuracy"]
    assert systems["e2e/cnn"]["head"] == E2E_HEAD
    # Every fit's early-stopping split is counted, per fraction below 1 too.
    assert set(results["learning_curve_validation_splits"]) == {"0.5"}
    assert set(results["validation_splits"]) == {"logreg", E2E_HEAD}


def test_learning_curves_need_handcrafted_and_neural_branches() -> None:
    frame = feature_frame(n_clips=30, n_folds=3, n_classes=3)
    config = BenchmarkConfig(heads=("logreg",), repeats=1, n_bootstrap=100,
                             train_fractions=(0.5,))
    with pytest.raises(ConfigError, match="both kinds"):
        run_benchmark(frame, dataset="synthetic", config=config, progress=False)
    with pytest.raises(ConfigError, match="train fractions"):
        BenchmarkConfig(train_fractions=(0.0,))


def test_report_shows_the_branch_comparisons_and_plots_the_curve(tmp_path) -> None:
    from featurekit.benchmark.report import write_report

    frame, sequences = _frame_and_sequences(n_clips=45)
    heads = {E2E_HEAD: HeadSpec(E2E_HEAD, functools.partial(E2EClassifier, **TINY),
                                seeded=True)}
    config = BenchmarkConfig(heads=("logreg",), fusions=("weighted",), repeats=1,
                             n_bootstrap=100, train_fractions=(0.5, 1.0))
    results = run_benchmark(frame, dataset="synthetic", config=config, head_specs=heads,
                            sequences=sequences, progress=False)
    written = write_report(results, tmp_path)
    assert written["learning_curve"].read_bytes()[:4] == b"\x89PNG"
    text = written["report"].read_text()
    assert "## Handcrafted branches next to each neural branch" in text
    assert "### Learning curve" in text
    for entry in results["learning_curve"]:
        assert f"| {entry['fraction']:g} | {entry['train_clips']:.0f} | `{entry['branch']}` |" \
            in text


def test_oof_features_with_the_e2e_stream_extend_the_handcrafted_columns() -> None:
    assert oof_feature_target(("pitch", "timbre", E2E_BRANCH)) == ("pitch", "timbre")
    assert oof_feature_target(("pitch", "neural.m", E2E_BRANCH)) == ("neural.m",)
    assert oof_feature_target(("pitch", "timbre")) == ()
    assert oof_feature_target((E2E_BRANCH,)) == ()
    frame, sequences = _frame_and_sequences()
    config = BenchmarkConfig(heads=("logreg",), fusions=("oof_features",))
    data = prepare_data(frame, config, sequences=sequences)
    plan = make_plan(data.branches, config, data.folds, sequence_branches=list(data.sequences))
    assert "pitch+timbre+e2e/logreg/oof_features" in [s.name for s in plan.systems]
    # The CNN's out-of-fold probabilities are read; the handcrafted heads are not fitted
    # alone for it.
    units = {(u.head, u.branches, u.kind) for u in plan.units if u.fold == 1 and u.repeat == 0}
    assert (E2E_HEAD, (E2E_BRANCH,), "branch") in units
    assert ("logreg", ("pitch", "timbre", E2E_BRANCH), "oof_features") in units


def test_train_refuses_the_e2e_stream_with_a_clear_error(tmp_path) -> None:
    from featurekit.model.train import train

    with pytest.raises(ConfigError, match="benchmark --model e2e"):
        train("urbansound8k", tmp_path, tmp_path / "store", model=["mn04_as", E2E_BRANCH])


def test_sequence_heads_read_the_cnn_frames_of_the_e2e_stream(monkeypatch) -> None:
    import featurekit.benchmark.execute as execute_module
    from featurekit.learn.torch.sequence import SequenceClassifier

    frame, sequences = _frame_and_sequences()
    rng = np.random.default_rng(5)
    y = frame["label_id"].to_numpy()
    pitch = rng.normal(size=(len(frame), 10, 3)).astype(np.float32)
    pitch[np.arange(len(frame)), :, y] += 2.0
    sequences["pitch"] = pitch
    heads = {E2E_HEAD: HeadSpec(E2E_HEAD, functools.partial(E2EClassifier, **TINY),
                                seeded=True),
             "seq": HeadSpec("seq", functools.partial(SequenceClassifier, width=8,
                                                      embedding_dim=8, max_epochs=3),
                             seeded=True)}
    seen: dict[tuple[str, ...], object] = {}
    fit_unit = execute_module.fit_unit

    def spy(unit, spec, data, train, test, **options):
        output = fit_unit(unit, spec, data, train, test, **options)
        if unit.head == "seq":
            seen[unit.branches] = options["other_outputs"]
        return output

    monkeypatch.setattr(execute_module, "fit_unit", spy)
    config = BenchmarkConfig(heads=("logreg", "seq"), fusions=("weighted", "joint", "blend"),
                             repeats=1, n_bootstrap=100)
    results = run_benchmark(frame.drop(columns=["neural.tiny.emb_000"]), dataset="synthetic",
                            config=config, head_specs=heads, sequences=sequences,
                            progress=False,
                            branches={"pitch": "pitch.", "timbre": "timbre."})
    names = {system["name"] for system in results["systems"]}
    assert {"e2e/cnn", "e2e/seq", "pitch+e2e/seq/joint"} <= names
    assert not any(name.endswith("/blend") and "e2e" in name for name in names)
    # The e2e stream the sequence heads read is the CNN's 16-channel frames, not the 6 bands.
    e2e_output = seen[(E2E_BRANCH,)][E2E_BRANCH]
    train_frames, test_frames = e2e_output.frames
    assert train_frames.shape[2] == test_frames.shape[2] == TINY["channels"][-1]
    assert train_frames.shape[0] == 40 and test_frames.shape[0] == 20
    assert seen[("pitch", E2E_BRANCH)][E2E_BRANCH] is not None
    comparison = next(c for c in results["sequence_vs_functionals"] if c["branch"] == E2E_BRANCH)
    assert (comparison["system"], comparison["reference"]) == ("e2e/seq", "e2e/cnn")
    # Their CNN saw every training row, inner validation rows too: no selection scores them.
    data = prepare_data(frame, config, sequences=sequences,
                        branches={"pitch": "pitch.", "timbre": "timbre."})
    plan = make_plan(data.branches, config, data.folds, sequence_branches=list(data.sequences))
    candidates = {name for _, names in plan.selections for name in names}
    assert "e2e/cnn" in candidates
    assert not any("/seq" in name and E2E_BRANCH in name for name in candidates)
