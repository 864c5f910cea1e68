"""Learned sequence embeddings, their blend, and the sequence head inside the benchmark."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_features import feature_frame, high_bit, low_bit

from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.errors import ConfigError, StoreError
from featurekit.fusion import EmbeddingBlendClassifier
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.torch.encoders import ENCODERS
from featurekit.learn.torch.sequence import SequenceClassifier
from featurekit.store.reader import FeatureStore
from featurekit.store.records import ClipResult
from featurekit.store.sequences import load_sequences, stream_columns

FAST = {"max_epochs": 12, "patience": 4, "width": 32, "embedding_dim": 16}


def coded_sequences(y: np.ndarray, code: np.ndarray, *, n_frames: int = 16, n_dims: int = 3,
                    strength: float = 1.0, seed: int = 0) -> np.ndarray:
    """Noise frames whose first dimension carries ``code`` (0/1) as a mean shift in the first
    half of each clip; every fifth clip is shorter (NaN padding)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(y.size, n_frames, n_dims)).astype(np.float32)
    X[:, : n_frames // 2, 0] += strength * (2.0 * code - 1.0)[:, None]
    X[::5, n_frames - 4:] = np.nan
    return X


def accuracy(model: object, X: object, y: np.ndarray) -> float:
    return float(np.mean(model.predict(X) == y))


@pytest.mark.parametrize(("encoder", "n_dims"), list(itertools.product(ENCODERS, [15, 104, 384])))
def test_encoders_are_small_and_embed_to_64_dims(encoder: str, n_dims: int) -> None:
    model = SequenceClassifier(encoder=encoder)
    network = model.build_encoder(n_dims)
    assert sum(p.numel() for p in network.parameters()) < 500_000
    import torch

    out = network(torch.zeros(3, 20, n_dims), torch.ones(3, 20, dtype=torch.bool))
    assert tuple(out.shape) == (3, 64)


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_classifier_learns_embeds_and_is_deterministic(encoder: str) -> None:
    y = np.arange(120) % 2
    X = coded_sequences(y, y, strength=1.5)
    first = SequenceClassifier(encoder=encoder, random_state=3, **FAST).fit(X[:80], y[:80])
    second = SequenceClassifier(encoder=encoder, random_state=3, **FAST).fit(X[:80], y[:80])
    other = SequenceClassifier(encoder=encoder, random_state=4, **FAST).fit(X[:80], y[:80])
    assert accuracy(first, X[80:], y[80:]) > 0.9
    np.testing.assert_array_equal(first.predict_proba(X[80:]), second.predict_proba(X[80:]))
    assert not np.array_equal(first.predict_proba(X[80:]), other.predict_proba(X[80:]))
    embedding = first.transform(X[80:])
    assert embedding.shape == (40, 16) and embedding.dtype == np.float32
    assert first.get_feature_names_out()[0] == "seq_emb_00"
    np.testing.assert_allclose(first.predict_proba(X).sum(axis=1), 1.0)


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_padding_frames_do_not_change_the_embedding(encoder: str) -> None:
    y = np.arange(40) % 2
    X = coded_sequences(y, y)
    model = SequenceClassifier(encoder=encoder, random_state=0, max_epochs=2).fit(X, y)
    padded = np.concatenate([X, np.full((40, 7, 3), np.nan, np.float32)], axis=1)
    np.testing.assert_allclose(model.transform(padded), model.transform(X), atol=1e-5)


def test_long_sequences_are_pooled_in_time() -> None:
    y = np.arange(30) % 2
    X = coded_sequences(y, y, n_frames=100)
    model = SequenceClassifier(max_steps=24, max_epochs=1, random_state=0).fit(X, y)
    assert model.pool_ == {"sequence": 5}
    assert model.transform(X[:, :37]).shape == (30, 64)


def test_bad_sequence_input_is_refused() -> None:
    with pytest.raises(ValueError, match="3-D"):
        SequenceClassifier().fit(np.zeros((4, 5)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="2 classes"):
        SequenceClassifier().fit(np.zeros((4, 5, 2)), [0, 0, 0, 0])
    with pytest.raises(ConfigError, match="unknown encoder"):
        SequenceClassifier(encoder="lstm").fit(np.zeros((4, 5, 2)), [0, 1, 0, 1])
    model = SequenceClassifier(max_epochs=1).fit(np.zeros((4, 5, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="dimensions per frame"):
        model.predict_proba(np.zeros((2, 5, 3)))


def test_blend_of_complementary_streams_beats_each_stream() -> None:
    y = np.arange(240) % 4
    streams = {"pitch": coded_sequences(y, low_bit(y), strength=1.5, seed=1),
               "spectral": coded_sequences(y, high_bit(y), strength=1.5, seed=2)}
    train, test = np.arange(160), np.arange(160, 240)
    blend = EmbeddingBlendClassifier(FAST, random_state=0).fit(
        {name: values[train] for name, values in streams.items()}, y[train])
    blended = accuracy(blend, {name: values[test] for name, values in streams.items()}, y[test])
    for values in streams.values():
        alone = SequenceClassifier(random_state=0, **FAST).fit(values[train], y[train])
        assert accuracy(alone, values[test], y[test]) < 0.6
    assert blended > 0.85


def test_joint_model_of_complementary_streams_beats_each_stream() -> None:
    y = np.arange(240) % 4
    streams = {"pitch": coded_sequences(y, low_bit(y), strength=1.5, seed=1),
               "neural.x": coded_sequences(y, high_bit(y), n_frames=6, n_dims=5,
                                           strength=1.5, seed=2)}
    train, test = np.arange(160), np.arange(160, 240)
    joint = SequenceClassifier(random_state=0, **FAST).fit(
        {name: values[train] for name, values in streams.items()}, y[train])
    held_out = {name: values[test] for name, values in streams.items()}
    assert joint.streams_ == ["pitch", "neural.x"]
    assert joint.n_dims_ == {"pitch": 3, "neural.x": 5}
    assert accuracy(joint, held_out, y[test]) > 0.85
    for values in streams.values():
        alone = SequenceClassifier(random_state=0, **FAST).fit(values[train], y[train])
        assert accuracy(alone, values[test], y[test]) < 0.6
    weights = joint.stream_weights(held_out)
    assert weights.shape == (80, 2)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert joint.transform(held_out).shape == (80, FAST["embedding_dim"])
    again = SequenceClassifier(random_state=0, **FAST).fit(
        {name: values[train] for name, values in streams.items()}, y[train])
    np.testing.assert_array_equal(again.predict_proba(held_out), joint.predict_proba(held_out))


def test_joint_gate_leans_on_the_informative_stream() -> None:
    y = np.arange(200) % 2
    rng = np.random.default_rng(5)
    streams = {"informative": coded_sequences(y, y, strength=2.0, seed=3),
               "noise": rng.normal(size=(200, 16, 3)).astype(np.float32)}
    joint = SequenceClassifier(random_state=0, **FAST).fit(streams, y)
    informative, noise = joint.stream_weights(streams).mean(axis=0)
    assert informative > noise
    assert accuracy(joint, streams, y) > 0.9


def test_joint_input_is_checked() -> None:
    y = np.arange(20) % 2
    streams = {"a": coded_sequences(y, y), "b": coded_sequences(y, y, n_dims=4)}
    with pytest.raises(ValueError, match="different numbers of clips"):
        SequenceClassifier(max_epochs=1).fit({"a": streams["a"], "b": streams["b"][:10]}, y)
    with pytest.raises(ValueError, match="non-empty mapping"):
        SequenceClassifier(max_epochs=1).fit({}, y)
    with pytest.raises(ConfigError, match="frame_dropout"):
        SequenceClassifier(frame_dropout=1.0).fit(streams, y)
    model = SequenceClassifier(max_epochs=1, random_state=0).fit(streams, y)
    with pytest.raises(ValueError, match="expected streams"):
        model.predict({"b": streams["b"], "a": streams["a"]})
    with pytest.raises(ValueError, match="stream 'b' has 3 dimensions"):
        model.predict({"a": streams["a"], "b": streams["a"]})


def test_frame_dropout_is_seeded_and_changes_training() -> None:
    y = np.arange(60) % 2
    X = coded_sequences(y, y)
    options = dict(FAST, max_epochs=3, patience=3)
    plain = SequenceClassifier(random_state=1, **options).fit(X, y)
    dropped = SequenceClassifier(random_state=1, frame_dropout=0.3, **options).fit(X, y)
    again = SequenceClassifier(random_state=1, frame_dropout=0.3, **options).fit(X, y)
    np.testing.assert_array_equal(dropped.predict_proba(X), again.predict_proba(X))
    assert not np.allclose(dropped.predict_proba(X), plain.predict_proba(X))


# --------------------------------------------------------------------------------------------
# In the benchmark
# --------------------------------------------------------------------------------------------

def benchmark_inputs(n_clips: int = 96, id_channel: bool = False
                     ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    frame = feature_frame(n_clips=n_clips, n_folds=3, widths={"pitch": 3, "spectral": 3})
    y = frame["label_id"].to_numpy()
    sequences = {"pitch": coded_sequences(y, low_bit(y), strength=1.5, seed=1),
                 "spectral": coded_sequences(y, high_bit(y), strength=1.5, seed=2)}
    if id_channel:  # dimension 2 of every frame is the clip's row number
        for values in sequences.values():
            values[:, :, 2] = np.where(np.isnan(values[:, :, 2]), np.nan,
                                       np.arange(n_clips)[:, None])
    return frame, sequences


def quick_seq(cls: type = SequenceClassifier, **options: object) -> dict[str, HeadSpec]:
    return {"seq": HeadSpec("seq", functools.partial(cls, **{**FAST, **options}), seeded=True)}


def test_benchmark_runs_the_sequence_head_the_blend_and_the_joint_model() -> None:
    # The joint model learns two encoders and a gate at once: 128 training clips, not 64.
    frame, sequences = benchmark_inputs(n_clips=192)
    config = BenchmarkConfig(heads=("logreg", "seq"),
                             fusions=("early", "calibrated", "blend", "joint"),
                             n_seeds=1, repeats=1, n_bootstrap=100)
    # Rows of the table in another order than the sequences: they are matched by position.
    results = run_benchmark(frame, dataset="generated", config=config,
                            head_specs=quick_seq(max_epochs=30, patience=8),
                            sequences=sequences, progress=False)
    by_name = {system["name"]: system for system in results["systems"]}
    assert set(by_name) == {"pitch/logreg", "spectral/logreg", "pitch+spectral/logreg/early",
                            "pitch+spectral/logreg/calibrated", "pitch/seq", "spectral/seq",
                            "pitch+spectral/seq/calibrated", "pitch+spectral/seq/blend",
                            "pitch+spectral/seq/joint", "auto", "single-branch-auto"}
    single = max(by_name["pitch/seq"]["mean"]["accuracy"],
                 by_name["spectral/seq"]["mean"]["accuracy"])
    for fusion in ("blend", "joint"):
        assert by_name[f"pitch+spectral/seq/{fusion}"]["mean"]["accuracy"] > 0.8 > single + 0.2
    assert all(choice.startswith("mean gate weights on the test clips: pitch 0.")
               for choice in by_name["pitch+spectral/seq/joint"]["fusion_choice"].values())
    compared = {c["branch"]: c for c in results["sequence_vs_functionals"]}
    assert compared["pitch"]["system"] == "pitch/seq"
    assert compared["pitch"]["reference"] == "pitch/logreg"
    assert results["sequence_dims"] == {"pitch": [16, 3], "spectral": [16, 3]}


def test_blend_under_an_official_split_learns_on_validation_and_scores_eval() -> None:
    """Under a train -> val -> eval split the blend read its encoders' embeddings with the
    second level's rows (an IndexError); its one blender learns on the validation clips."""
    frame, sequences = benchmark_inputs()
    config = BenchmarkConfig(heads=("seq",), fusions=("blend",), n_seeds=1, repeats=1,
                             n_bootstrap=100)
    results = run_benchmark(frame, dataset="g", config=config, head_specs=quick_seq(),
                            sequences=sequences, protocol="train-val-eval", progress=False)
    by_name = {system["name"]: system for system in results["systems"]}
    blend = by_name["pitch+spectral/seq/blend"]
    assert results["folds"] == [3]
    assert blend["fusion_choice"] == {"3": "linear blend of 2 x 16-d embeddings, 1 inner splits"}
    single = max(by_name["pitch/seq"]["mean"]["accuracy"],
                 by_name["spectral/seq"]["mean"]["accuracy"])
    assert blend["mean"]["accuracy"] > 0.8 > single + 0.2


def test_benchmark_sequences_follow_the_callers_row_order() -> None:
    frame, sequences = benchmark_inputs()
    config = BenchmarkConfig(heads=("seq",), fusions=("blend",), n_seeds=1, repeats=1,
                             n_bootstrap=100)
    order = np.random.default_rng(0).permutation(len(frame))
    first = run_benchmark(frame, dataset="g", config=config, head_specs=quick_seq(),
                          sequences=sequences, progress=False)
    shuffled = run_benchmark(frame.iloc[order], dataset="g", config=config,
                             head_specs=quick_seq(),
                             sequences={k: v[order] for k, v in sequences.items()},
                             progress=False)
    assert ([s["per_fold"] for s in first["systems"]]
            == [s["per_fold"] for s in shuffled["systems"]])


def test_memory_mapped_sequences_on_two_workers_score_as_in_memory_ones(
        tmp_path: Path) -> None:
    """The workers map the sequence files (views pickled by path) and read them batch by
    batch: the same scores as arrays held in memory and fitted in this process."""
    frame, sequences = benchmark_inputs(n_clips=72)
    mapped = {}
    for name, values in sequences.items():
        np.save(tmp_path / f"{name}.npy", values)
        mapped[name] = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
    config = BenchmarkConfig(heads=("seq",), fusions=("blend",), n_seeds=1, repeats=1,
                             n_bootstrap=100)
    in_memory = run_benchmark(frame, dataset="g", config=config, head_specs=quick_seq(),
                              sequences=sequences, progress=False, n_jobs=1)
    on_workers = run_benchmark(frame, dataset="g", config=config, head_specs=quick_seq(),
                               sequences=mapped, progress=False, n_jobs=2)
    assert ([s["per_fold"] for s in in_memory["systems"]]
            == [s["per_fold"] for s in on_workers["systems"]])


def test_no_test_fold_clip_reaches_an_encoder_a_joint_model_or_a_blender(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoders record the clips they are trained on and stamp their embeddings with clip id
    and encoder; the blender records what it is fitted on."""
    trained: dict[int, set[int]] = {}
    serial = itertools.count()

    def clip_ids(X):  # dimension 2 of every frame is the clip's row number
        streams = X.values() if isinstance(X, dict) else [X]
        ids = {tuple(np.nanmax(values[:, :, 2], axis=1).astype(int)) for values in streams}
        assert len(ids) == 1, "streams of one call hold different clips"
        return np.array(ids.pop())

    class SpyEncoder(SequenceClassifier):
        def fit(self, X, y, groups=None):
            self.serial_ = next(serial)
            trained[self.serial_] = set(clip_ids(X).tolist())
            return super().fit(X, y, groups)

        def transform(self, X):
            out = super().transform(X)
            out[:, 0] = clip_ids(X)
            out[:, 1] = self.serial_
            return out

    blender_rows: list[np.ndarray] = []
    import featurekit.fusion.blend as blend

    real_fit_blender = blend.fit_blender

    def spy_fit_blender(Z, y, **kwargs):
        blender_rows.append(np.asarray(Z).copy())
        return real_fit_blender(Z, y, **kwargs)

    monkeypatch.setattr(blend, "fit_blender", spy_fit_blender)
    frame, sequences = benchmark_inputs(n_clips=72, id_channel=True)
    config = BenchmarkConfig(heads=("seq",), fusions=("blend", "weighted", "joint"),
                             n_seeds=2, repeats=1, n_bootstrap=100)
    run_benchmark(frame, dataset="g", config=config, head_specs=quick_seq(SpyEncoder),
                  sequences=sequences, progress=False)
    fold_of = frame["fold"].to_numpy()
    # 3 outer folds x 2 seeds x (1 member + 2 twins: two training folds) for each of 2
    # streams and the joint model (an auto candidate: its twins score it)
    assert len(trained) == 3 * 2 * 3 * 3
    for clips in trained.values():
        assert len(set(fold_of[sorted(clips)])) < 3, "an encoder was trained on every fold"
    assert len(blender_rows) == 3 * 2 * 2  # outer folds x seeds x inner splits
    width = FAST["embedding_dim"]
    for Z in blender_rows:
        for block in (Z[:, :width], Z[:, width:]):
            clips = block[:, 0].astype(int)
            assert len(set(fold_of[clips])) < 3, "a blender saw a test-fold clip"
            for encoder in np.unique(block[:, 1]).astype(int):
                rows = clips[block[:, 1] == encoder]
                assert not trained[encoder] & set(rows.tolist()), \
                    "a blender saw an embedding of a clip its encoder was trained on"


def test_sequence_head_needs_sequences() -> None:
    frame, _ = benchmark_inputs(n_clips=30)
    with pytest.raises(ConfigError, match="frame sequences"):
        run_benchmark(frame, dataset="g", config=BenchmarkConfig(heads=("seq",)),
                      progress=False)
    with pytest.raises(ConfigError, match="not a benchmark branch"):
        run_benchmark(frame, dataset="g", config=BenchmarkConfig(heads=("seq",)),
                      sequences={"timbre": np.zeros((30, 4, 2))}, progress=False)


# --------------------------------------------------------------------------------------------
# Loading from a store
# --------------------------------------------------------------------------------------------

def _frames(n_frames: int, offset: float) -> pd.DataFrame:
    columns = ["pitch.f0_hz", "pitch.f0_cents", "pitch.voicing_prob", "pitch.salience",
               *(f"pitch.chroma_{i:02d}" for i in range(12)), "timbre.mfcc_00",
               "timbre.mfcc_01", "timbre.mfcc_delta_00", "timbre.mfcc_delta2_00",
               "timbre.melband_00", "spectral.centroid_hz", "spectral.flux"]
    values = offset + np.arange(n_frames)[:, None] + np.zeros((1, len(columns)))
    table = pd.DataFrame(values.astype(np.float32), columns=columns)
    table.insert(0, "time_s", np.arange(n_frames) * 0.02)
    return table


def test_stream_columns_pick_the_documented_descriptors() -> None:
    names = list(_frames(1, 0.0).columns)
    assert stream_columns("pitch", names) == ["pitch.f0_cents", "pitch.voicing_prob",
                                              "pitch.salience",
                                              *(f"pitch.chroma_{i:02d}" for i in range(12))]
    assert stream_columns("timbre", names) == ["timbre.mfcc_00", "timbre.mfcc_01",
                                               "timbre.mfcc_delta_00", "timbre.melband_00"]
    assert stream_columns("neural.tiny", ["neural.tiny.neuralogram_000"]) == [
        "neural.tiny.neuralogram_000"]
    with pytest.raises(StoreError, match="no frame column"):
        stream_columns("spectral", ["pitch.f0_cents"])
    with pytest.raises(ConfigError, match="unknown sequence stream"):
        stream_columns("loudness", names)


def test_load_sequences_pads_and_orders_clips(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    clips = pd.DataFrame({"clip_id": ["a", "b", "c"], "fold": [1, 1, 2],
                          "label": ["x", "y", "x"], "label_id": [0, 1, 0],
                          "path": ["a.wav", "b.wav", "c.wav"]})
    lengths = {"a": 4, "b": 6, "c": 3}
    with store.writer("ds", "handcrafted", feature_names=["pitch.x.mean"],
                      provenance={"config_hash": "h"}, frames=True) as writer:
        writer.write_batch(clips, [ClipResult(np.zeros(1, np.float32),
                                              frames=_frames(lengths[c], 100.0 * i))
                                   for i, c in enumerate(clips["clip_id"])])
    loaded = load_sequences(store, "ds", ["pitch", "spectral"], ["c", "a", "b"])
    assert loaded["pitch"].shape == (3, 6, 15) and loaded["spectral"].shape == (3, 6, 2)
    spectral = loaded["spectral"]
    np.testing.assert_array_equal(spectral[0, :3, 0], [200, 201, 202])  # clip c first
    assert np.isnan(spectral[0, 3:]).all() and np.isnan(spectral[1, 4:]).all()
    np.testing.assert_array_equal(spectral[2, :, 1], 100 + np.arange(6))
    assert load_sequences(store, "ds", ["pitch"], ["b"], max_frames=2)["pitch"].shape[1] == 2
    with pytest.raises(StoreError, match="no stored frames"):
        load_sequences(store, "ds", ["pitch"], ["a", "zz"])


def test_info_nce_known_answers() -> None:
    import torch

    from featurekit.learn.torch.training import info_nce

    batch = 8
    aligned = torch.eye(batch)
    assert float(info_nce([aligned, aligned], temperature=0.01)) < 1e-6
    constant = torch.ones(batch, 4)  # says nothing about which clip is which
    assert float(info_nce([constant, constant, constant], temperature=0.1)) == \
        pytest.approx(np.log(batch), rel=1e-6)
    shuffled = aligned[torch.roll(torch.arange(batch), 1)]  # every clip matched to another
    assert float(info_nce([aligned, shuffled], temperature=0.01)) > 50.0
    # Invariant to each embedding's length (cosine similarity).
    scaled = info_nce([3.0 * aligned + 0.1, aligned + 0.1 / 3.0], temperature=0.5)
    assert float(scaled) == pytest.approx(float(info_nce([aligned + 0.1 / 3.0] * 2,
                                                         temperature=0.5)), rel=1e-5)


def test_contrastive_alignment_is_a_weighted_term_of_the_joint_loss(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import featurekit.learn.torch.sequence as sequence

    y = np.arange(160) % 4
    streams = {"pitch": coded_sequences(y, low_bit(y), strength=1.5, seed=1),
               "neural.x": coded_sequences(y, high_bit(y), n_frames=6, n_dims=5,
                                           strength=1.5, seed=2)}
    calls = []
    info_nce = sequence.info_nce

    def spy(embeddings, *, temperature):
        calls.append((len(embeddings), embeddings[0].shape[0], temperature))
        return info_nce(embeddings, temperature=temperature)

    monkeypatch.setattr(sequence, "info_nce", spy)
    # Off by default: ESC-10 did not pass the rule of benchmarks/notes/contrastive.md.
    assert SequenceClassifier().contrastive_weight == 0.0
    plain = SequenceClassifier(random_state=0, **FAST).fit(streams, y)
    off = SequenceClassifier(random_state=0, contrastive_weight=0.0, **FAST).fit(streams, y)
    assert not calls
    np.testing.assert_array_equal(off.predict_proba(streams), plain.predict_proba(streams))
    aligned = SequenceClassifier(random_state=0, contrastive_weight=1.0,
                                 contrastive_temperature=0.2, **FAST).fit(streams, y)
    assert calls and {call[0] for call in calls} == {2} and {call[2] for call in calls} == {0.2}
    assert max(call[1] for call in calls) == FAST.get("batch_size", 64)
    assert not np.array_equal(aligned.predict_proba(streams), plain.predict_proba(streams))
    assert accuracy(aligned, streams, y) > 0.6  # still learns the task (chance: 0.25)
    with pytest.raises(ConfigError, match="contrastive_weight must be >= 0"):
        SequenceClassifier(contrastive_weight=-1.0).fit(streams, y)
    with pytest.raises(ConfigError, match="contrastive_temperature must be > 0"):
        SequenceClassifier(contrastive_temperature=0.0).fit(streams, y)
