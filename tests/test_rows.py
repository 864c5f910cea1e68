"""Frame sequences larger than memory: RowView, memory-mapped loads, and heads that read them
batch by batch with the same results as in-memory arrays."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featurekit.errors import ConfigError, StoreError
from featurekit.learn.fitting import take_rows
from featurekit.learn.rows import RowView
from featurekit.store.reader import FeatureStore
from featurekit.store.records import ClipResult
from featurekit.store.sequences import load_sequences


def _mapped(tmp_path: Path, values: np.ndarray, name: str = "values.npy") -> np.ndarray:
    np.save(tmp_path / name, values)
    return np.load(tmp_path / name, mmap_mode="r")


def test_row_view_indexes_like_the_rows_it_stands_for(tmp_path: Path) -> None:
    values = np.arange(5 * 3 * 2, dtype=np.float32).reshape(5, 3, 2)
    rows = np.array([4, 0, 2, 2])
    view = RowView(_mapped(tmp_path, values), rows)
    expected = values[rows]
    assert view.shape == expected.shape and len(view) == 4 and view.ndim == 3
    assert view.dtype == np.float32
    for index in (1, slice(1, 3), np.array([3, 0]), np.array([True, False, True, False]),
                  (np.array([1, 2]), slice(None), 1), (2, 0), (Ellipsis, 1), (slice(None), 2)):
        np.testing.assert_array_equal(view[index], expected[index])
        assert isinstance(view[index], np.ndarray) and not isinstance(view[index], np.memmap)
    narrower = view.take(np.array([3, 1]))
    assert isinstance(narrower, RowView)
    np.testing.assert_array_equal(np.asarray(narrower), expected[[3, 1]])
    np.testing.assert_array_equal(np.asarray(view, dtype=np.float64), expected)
    with pytest.raises(IndexError, match="out of range"):
        RowView(values, [0, 5])
    with pytest.raises(ValueError, match="integer positions"):
        RowView(values, [0.5])


def test_row_view_of_a_mapped_file_pickles_by_path_and_rows(tmp_path: Path) -> None:
    values = np.random.default_rng(0).normal(size=(400, 50, 20)).astype(np.float32)  # 1.6 MB
    view = RowView(_mapped(tmp_path, values), np.arange(0, 400, 3))
    payload = pickle.dumps(view)
    assert len(payload) < 2_000  # the path and 134 positions, not 0.5 MB of frames
    restored = pickle.loads(payload)
    assert isinstance(restored.values, np.memmap)
    np.testing.assert_array_equal(np.asarray(restored), values[::3])
    # An in-memory array travels as the view's own rows only.
    in_memory = pickle.loads(pickle.dumps(RowView(values, [5, 1])))
    np.testing.assert_array_equal(np.asarray(in_memory), values[[5, 1]])
    assert len(in_memory.values) == 2
    # A file replaced by another shape is refused, not read as garbage.
    np.save(tmp_path / "values.npy", values[:10])
    with pytest.raises(ValueError, match="shape"):
        pickle.loads(payload)


def test_take_rows_keeps_mapped_sequences_mapped(tmp_path: Path) -> None:
    values = np.ones((6, 4, 2), dtype=np.float32)
    mapped = _mapped(tmp_path, values)
    assert isinstance(take_rows(mapped, np.array([1, 2])), RowView)
    assert isinstance(take_rows({"a": mapped}, np.array([1]))["a"], RowView)
    flat = _mapped(tmp_path, np.ones((6, 3), dtype=np.float32), "flat.npy")
    assert type(take_rows(flat, np.array([0, 1]))) is not RowView  # clip-level columns


def _frames(n_frames: int, offset: float) -> pd.DataFrame:
    values = offset + np.arange(n_frames)[:, None] + np.zeros((1, 2))
    table = pd.DataFrame(values.astype(np.float32),
                         columns=["spectral.centroid_hz", "spectral.flux"])
    table.insert(0, "time_s", np.arange(n_frames) * 0.02)
    return table


def _store_in_parts(tmp_path: Path, lengths: dict[str, int], part_size: int) -> FeatureStore:
    store = FeatureStore(tmp_path / "store")
    ids = list(lengths)
    with store.writer("ds", "handcrafted", feature_names=["spectral.x.mean"],
                      provenance={"config_hash": "h"}, frames=True) as writer:
        for start in range(0, len(ids), part_size):
            part = ids[start:start + part_size]
            clips = pd.DataFrame({"clip_id": part, "fold": 1, "label": "x", "label_id": 0,
                                  "path": [f"{clip}.wav" for clip in part]})
            writer.write_batch(clips, [ClipResult(np.zeros(1, np.float32),
                                                  frames=_frames(lengths[clip],
                                                                 100.0 * ids.index(clip)))
                                       for clip in part])
    return store


def test_load_sequences_maps_the_same_arrays_it_would_hold(tmp_path: Path) -> None:
    lengths = {f"clip{i:02d}": 1 + (7 * i) % 9 for i in range(20)}
    store = _store_in_parts(tmp_path, lengths, part_size=6)  # four frames files
    assert len(store.frame_files("ds", "handcrafted")) == 4
    order = list(reversed(lengths))
    in_memory = load_sequences(store, "ds", ["spectral"], order)["spectral"]
    (tmp_path / "mapped").mkdir()
    mapped = load_sequences(store, "ds", ["spectral"], order,
                            directory=tmp_path / "mapped")["spectral"]
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    assert Path(mapped.filename) == tmp_path / "mapped" / "spectral.npy"
    np.testing.assert_array_equal(mapped, in_memory)
    assert in_memory.shape == (20, 9, 2)
    for row, clip in enumerate(order):
        n = lengths[clip]
        np.testing.assert_array_equal(in_memory[row, :n, 1],
                                      100.0 * list(lengths).index(clip) + np.arange(n))
        assert np.isnan(in_memory[row, n:]).all()
    capped = load_sequences(store, "ds", ["spectral"], order, max_frames=3)["spectral"]
    np.testing.assert_array_equal(capped, in_memory[:, :3])
    with pytest.raises(ConfigError, match="max_frames"):
        load_sequences(store, "ds", ["spectral"], order, max_frames=0)
    with pytest.raises(ConfigError, match="repeat"):
        load_sequences(store, "ds", ["spectral"], ["clip01", "clip01"])
    with pytest.raises(StoreError, match="no stored frames"):
        load_sequences(store, "ds", ["spectral"], ["clip01", "nope"])


def test_heads_read_a_mapped_view_as_they_read_the_array(tmp_path: Path) -> None:
    from featurekit.learn.torch.e2e import E2EClassifier
    from featurekit.learn.torch.sequence import SequenceClassifier

    rng = np.random.default_rng(0)
    values = rng.normal(size=(60, 12, 4)).astype(np.float32)
    values[:, :, 1] += 2.0 * (np.arange(60) % 2)[:, None]
    values[::5, 9:] = np.nan  # padding
    values[3, 2, 0] = np.inf  # read as missing, batch by batch
    rows = rng.permutation(60)[:48]
    y = rows % 2
    view = RowView(_mapped(tmp_path, values), rows)
    copy = values[rows]
    for make in (lambda: SequenceClassifier(max_epochs=3, width=8, embedding_dim=4,
                                            random_state=0),
                 lambda: E2EClassifier(channels=(4, 4, 4, 4), max_epochs=2, batch_size=16,
                                       random_state=0)):
        from_view, from_copy = make().fit(view, y), make().fit(copy, y)
        np.testing.assert_array_equal(from_view.predict_proba(view.take(np.arange(10))),
                                      from_copy.predict_proba(copy[:10]))
        assert np.isfinite(from_view.predict_proba(view)).all()
