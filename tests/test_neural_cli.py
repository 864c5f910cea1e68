"""``featurekit embed`` end to end on a generated mini UrbanSound8K (untrained mn04_as)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


def test_cli_embed_fills_the_store_resumes_and_flags_untrained(tmp_path, capsys, monkeypatch):
    from fixtures_audio import bad_clip_ids, make_urbansound8k

    from featurekit.cli import main
    from featurekit.store.reader import FeatureStore

    monkeypatch.setenv("FEATUREKIT_NO_PROGRESS", "1")
    data = make_urbansound8k(tmp_path / "data", folds=(1, 2), clips_per_fold=2,
                             with_bad_files=True)
    store_path = tmp_path / "store"
    command = ["embed", "--dataset", "urbansound8k", "--data-dir", str(data), "--store",
               str(store_path), "--model", "mn04_as", "--weights", "untrained", "--tags",
               "--frames", "--batch-size", "3"]
    with pytest.warns(UserWarning, match="partial copy"):
        assert main(command) == 0
    store = FeatureStore(store_path)
    table = store.read("urbansound8k", branches="neural.mn04_as")
    names = store.feature_names("urbansound8k", "neural.mn04_as")
    assert names[0] == "neural.mn04_as.emb_000" and len(names) == 384 + 527
    # A silent clip is valid audio and gets an embedding; undecodable and NaN files fail.
    bad = bad_clip_ids(data)
    assert len(table) == 5 and bad["silent"] in set(table["clip_id"])
    assert not table[names].isna().any().any()
    errors = store.errors("urbansound8k", "neural.mn04_as")
    assert set(errors["clip_id"]) == {bad[kind] for kind in ("corrupt", "empty", "nan")}
    assert store.provenance("urbansound8k", "neural.mn04_as")["untrained"] is True
    frames = store.frames("urbansound8k", "neural.mn04_as")
    assert "time_s" in frames.columns and np.isfinite(frames["time_s"]).all()
    capsys.readouterr()
    with pytest.warns(UserWarning, match="partial copy"):
        assert main([*command, "--strict"]) == 1  # bad clips are retried and fail again
    assert "0 computed, 5 already stored" in capsys.readouterr().out
