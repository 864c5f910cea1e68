"""Embeddings computed elsewhere: imported into a store, refused when malformed, exported back,
and benchmarked like a pretrained model's branch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_features import feature_frame, full_label

from featurekit.benchmark import BenchmarkConfig, benchmark_store
from featurekit.cli import main
from featurekit.computers.imported import import_embeddings, imported_models
from featurekit.config import ExtractionConfig
from featurekit.datasets.base import Dataset
from featurekit.errors import ConfigError, EmbeddingImportError, StoreError
from featurekit.pipeline import check_models, fill_store
from featurekit.store.export import export_branch
from featurekit.store.reader import FeatureStore
from featurekit.store.records import ClipResult
from featurekit.store.sequences import load_sequences

KEYS = ["clip_id", "fold", "label", "label_id"]
FAST = BenchmarkConfig(heads=("logreg",), fusions=("early", "weighted"), n_seeds=1,
                       repeats=1, n_bootstrap=200)
#: Results that differ between two runs whatever their inputs (clocks, store hashes).
RUN_FACTS = ("timings_s", "plan", "config_hashes", "provenance")


def make_dataset(frame: pd.DataFrame, root: Path) -> Dataset:
    clips = frame[KEYS].assign(path=[str(root / f"{clip}.wav") for clip in frame["clip_id"]],
                               recording=frame["clip_id"])
    classes = [f"class{i}" for i in range(int(frame["label_id"].max()) + 1)]
    return Dataset(name="generated", clips=clips, classes=classes, expected_folds=[1, 2, 3],
                   root=root)


def write_branch(store: FeatureStore, dataset: Dataset, frame: pd.DataFrame, branch: str,
                 prefix: str, *, frames: bool = False) -> None:
    names = [c for c in frame.columns if c.startswith(prefix)]
    results = []
    for i, values in enumerate(frame[names].to_numpy(np.float32)):
        table = None
        if frames:  # three frames per clip, the clip's first two values drifting in time
            table = pd.DataFrame({"time_s": [0.0, 0.5, 1.0]})
            for j in range(2):
                table[f"{branch}.neuralogram_{j:03d}"] = (
                    values[j] + np.arange(3, dtype=np.float32) * (i % 3))
        results.append(ClipResult(values, frames=table))
    with store.writer(dataset.name, branch, feature_names=names, frames=frames,
                      provenance={"config_hash": branch}) as writer:
        writer.write_batch(dataset.clips, results)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Dataset, FeatureStore, pd.DataFrame]:
    """A dataset of 48 generated clips and a store with handcrafted and neural.mn04_as
    branches, the neural one carrying the label."""
    frame = feature_frame(n_clips=48, widths={"pitch": 3, "neural.mn04_as": 5},
                          signal={"neural.mn04_as": (full_label, 2.0)})
    dataset = make_dataset(frame, tmp_path / "audio")
    store = FeatureStore(tmp_path / "store")
    write_branch(store, dataset, frame, "handcrafted", "pitch.")
    write_branch(store, dataset, frame, "neural.mn04_as", "neural.", frames=True)
    return dataset, store, frame


def embeddings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["clip_id", *(c for c in frame.columns if c.startswith("neural."))]]


def comparable(results: dict, model: str) -> str:
    """The figures, without run facts and the frozen network's size (an imported embedding
    comes without its network, so it has no count)."""
    kept = {key: value for key, value in results.items()
            if key not in (*RUN_FACTS, "frozen_parameters")}
    kept["systems"] = [{key: value for key, value in system.items()
                        if key != "n_frozen_parameters"} for system in kept["systems"]]
    return json.dumps(kept, sort_keys=True).replace(model, "MODEL")


def test_exported_embeddings_imported_under_another_name_benchmark_identically(
        world: tuple, tmp_path: Path) -> None:
    dataset, store, _ = world
    export_branch(store, "generated", "neural.mn04_as", tmp_path / "emb.parquet",
                  frames_out=tmp_path / "frames.parquet")
    summary = import_embeddings(tmp_path / "emb.parquet", dataset, store, name="mine",
                                frames=tmp_path / "frames.parquet")
    assert (summary.stored, summary.already, summary.dimension, summary.missing) == (48, 0, 5, [])
    assert imported_models(store, "generated") == ["mine"]
    original = store.read("generated", "neural.mn04_as")
    imported = store.read("generated", "neural.mine")
    np.testing.assert_array_equal(original.to_numpy()[:, 4:], imported.to_numpy()[:, 4:])
    pd.testing.assert_frame_equal(original[KEYS], imported[KEYS])
    frames = store.frames("generated", "neural.mine")
    assert list(frames.columns) == ["clip_id", "time_s", "neural.mine.neuralogram_000",
                                    "neural.mine.neuralogram_001"]
    np.testing.assert_array_equal(frames.to_numpy()[:, 1:].astype(float),
                                  store.frames("generated", "neural.mn04_as")
                                  .to_numpy()[:, 1:].astype(float))
    ids = dataset.clips["clip_id"].tolist()
    sequences = [load_sequences(store, "generated", [f"neural.{model}"], ids)[f"neural.{model}"]
                 for model in ("mn04_as", "mine")]  # what the sequence heads read
    np.testing.assert_array_equal(*sequences)
    runs = [benchmark_store(store, "generated", model=model, config=FAST, progress=False,
                            clips=dataset.clips) for model in ("mn04_as", "mine")]
    assert comparable(runs[0], "mn04_as") == comparable(runs[1], "mine")
    assert runs[1]["best_single"] == "neural.mine/logreg"
    assert runs[0]["frozen_parameters"]["neural.mn04_as"] > 0
    assert runs[1]["frozen_parameters"] == {"neural.mine": None}
    provenance = runs[1]["provenance"]["neural.mine"]
    assert provenance["imported"] and provenance["count"] == 48
    assert provenance["config"]["dimension"] == 5
    assert len(provenance["config"]["source_sha256"]) == 64
    assert provenance["source_file"] == str((tmp_path / "emb.parquet").resolve())


def test_csv_by_path_npy_with_ids_and_a_list_column_store_the_same_values(
        world: tuple, tmp_path: Path) -> None:
    dataset, store, frame = world
    values = embeddings(frame).drop(columns="clip_id").to_numpy(np.float32)
    relative = [f"{clip}.wav" for clip in frame["clip_id"]]
    pd.DataFrame(values).assign(path=relative)[["path", *range(5)]].to_csv(
        tmp_path / "by_path.csv", index=False)
    np.save(tmp_path / "matrix.npy", values[::-1])
    (tmp_path / "ids.txt").write_text("\n".join(frame["clip_id"][::-1]) + "\n")
    pd.DataFrame({"clip_id": frame["clip_id"], "vector": list(values)}).to_parquet(
        tmp_path / "lists.parquet")
    for name, source, ids in (("csv", "by_path.csv", None), ("npy", "matrix.npy", "ids.txt"),
                              ("lists", "lists.parquet", None)):
        import_embeddings(tmp_path / source, dataset, store, name=name,
                          ids=None if ids is None else tmp_path / ids)
        stored = store.read("generated", f"neural.{name}")
        np.testing.assert_array_equal(stored.to_numpy()[:, 4:].astype(np.float32), values)


def test_clips_without_an_embedding_are_listed_left_out_and_recorded(
        world: tuple, tmp_path: Path) -> None:
    dataset, store, frame = world
    embeddings(frame).iloc[3:].to_parquet(tmp_path / "partial.parquet")
    with pytest.warns(UserWarning, match=r"3 clip\(s\) of generated have no embedding .* "
                                         r"clip00000, clip00001, clip00002"):
        summary = import_embeddings(tmp_path / "partial.parquet", dataset, store, name="part")
    assert summary.stored == 45 and summary.missing == ["clip00000", "clip00001", "clip00002"]
    errors = store.errors("generated", "neural.part")
    assert errors["clip_id"].tolist() == summary.missing
    assert set(errors["error_type"]) == {"MissingEmbedding"}
    with pytest.warns(UserWarning):  # the same file again: resumes, nothing new
        again = import_embeddings(tmp_path / "partial.parquet", dataset, store, name="part")
    assert (again.stored, again.already) == (0, 45)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: pd.concat([t, t.assign(clip_id="nowhere").iloc[:1]]),
     r"1 clip_id\(s\) match no clip of the dataset, e\.g\. 'nowhere'"),
    (lambda t: pd.concat([t, t.iloc[4:5]]), r"duplicate id 'clip00004'"),
    (lambda t: t.assign(**{"neural.mn04_as.emb_002": np.where(
        t.index == 7, np.nan, t["neural.mn04_as.emb_002"])}),
     r"1 row\(s\) hold missing or non-finite values, e\.g\. 'clip00007'"),
    (lambda t: t.assign(**{"neural.mn04_as.emb_000": np.where(
        t.index == 2, np.inf, t["neural.mn04_as.emb_000"])}), r"non-finite .* 'clip00002'"),
    (lambda t: t.assign(note="x"), r"column\(s\) note are not numeric"),
    (lambda t: t.rename(columns={"clip_id": "file"}), "no id column clip_id or path"),
])
def test_malformed_tables_are_refused_naming_the_row(world: tuple, tmp_path: Path,
                                                     edit: object, message: str) -> None:
    dataset, store, frame = world
    edit(embeddings(frame)).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(EmbeddingImportError, match=message):
        import_embeddings(tmp_path / "bad.parquet", dataset, store, name="bad")
    assert "neural.bad" not in store.branches("generated")


def test_ragged_rows_missing_files_and_other_dimensions_are_refused(
        world: tuple, tmp_path: Path) -> None:
    dataset, store, frame = world
    table = embeddings(frame)
    lists = pd.DataFrame({"clip_id": table["clip_id"],
                          "vector": [np.ones(5 - (i == 9)) for i in range(len(table))]})
    lists.to_parquet(tmp_path / "ragged.parquet")
    with pytest.raises(EmbeddingImportError, match="ragged rows: 'clip00009' has 4 values"):
        import_embeddings(tmp_path / "ragged.parquet", dataset, store, name="r")
    text = table.to_csv(index=False).splitlines()
    text[5] += ",0.5"
    (tmp_path / "ragged.csv").write_text("\n".join(text))
    with pytest.raises(EmbeddingImportError, match="ragged rows"):
        import_embeddings(tmp_path / "ragged.csv", dataset, store, name="r")
    with pytest.raises(EmbeddingImportError, match="embeddings file not found"):
        import_embeddings(tmp_path / "absent.parquet", dataset, store, name="r")
    np.save(tmp_path / "m.npy", np.ones((48, 5)))
    with pytest.raises(EmbeddingImportError, match="needs an ids file"):
        import_embeddings(tmp_path / "m.npy", dataset, store, name="r")
    (tmp_path / "ids.txt").write_text("\n".join(table["clip_id"][:47]))
    with pytest.raises(EmbeddingImportError, match="48 rows but 47 ids"):
        import_embeddings(tmp_path / "m.npy", dataset, store, name="r", ids=tmp_path / "ids.txt")
    table.to_parquet(tmp_path / "five.parquet")
    import_embeddings(tmp_path / "five.parquet", dataset, store, name="mine")
    table.iloc[:, :4].to_parquet(tmp_path / "three.parquet")
    with pytest.raises(EmbeddingImportError, match=r"3 dimensions, but generated/neural\.mine "
                                                   r".* holds 5"):
        import_embeddings(tmp_path / "three.parquet", dataset, store, name="mine")
    other = table.assign(**{"neural.mn04_as.emb_000": 0.0})
    other.to_parquet(tmp_path / "other.parquet")
    with pytest.raises(StoreError, match="overwrite"):  # same dimension, another file
        import_embeddings(tmp_path / "other.parquet", dataset, store, name="mine")
    import_embeddings(tmp_path / "three.parquet", dataset, store, name="mine", overwrite=True)
    assert len(store.feature_names("generated", "neural.mine")) == 3


@pytest.mark.parametrize("name", ["mn04_as", "e2e", "a.b", "_x"])
def test_registered_and_malformed_names_are_refused(world: tuple, tmp_path: Path,
                                                    name: str) -> None:
    dataset, store, frame = world
    embeddings(frame).to_parquet(tmp_path / "emb.parquet")
    with pytest.raises((ConfigError, StoreError), match="name"):
        import_embeddings(tmp_path / "emb.parquet", dataset, store, name=name)


def test_imported_models_are_known_to_the_benchmark_and_never_computed(
        world: tuple, tmp_path: Path) -> None:
    dataset, store, frame = world
    with pytest.raises(ConfigError, match="featurekit import-embeddings --name mine"):
        check_models("mine", imported=imported_models(store, "generated"))
    with pytest.raises(ConfigError, match=r"choose from mn04_as, .*, e2e$"):  # train's check
        check_models("mine")
    embeddings(frame).to_parquet(tmp_path / "emb.parquet")
    import_embeddings(tmp_path / "emb.parquet", dataset, store, name="mine")
    assert check_models("mine", imported=imported_models(store, "generated")) == ["mine"]
    # No computer exists for an imported name: were one built, this would raise.
    options = {"model": "mine", "branches": (), "extraction": ExtractionConfig(),
               "progress": False}
    assert fill_store(dataset, store, **options) == []
    with pytest.raises(StoreError, match="imported without them"):
        fill_store(dataset, store, frames=True, **options)


@pytest.mark.filterwarnings("ignore::featurekit.datasets.DatasetWarning")  # assigned folds
def test_command_line_imports_exports_and_refuses_in_one_line(
        world: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = world[1]
    folder = tmp_path / "folder"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
    import soundfile

    for i in range(4):
        soundfile.write(folder / "ab"[i // 2] / f"c{i}.wav", np.zeros(800), 8000)
    common = ["--dataset", "folder", "--data-dir", str(folder), "--store", str(store.path)]
    assert main(["store", "export", str(store.path), "--dataset", "generated", "--branch",
                 "neural.mn04_as", "--out", str(tmp_path / "emb.csv")]) == 0
    assert "48 clips written" in capsys.readouterr().out
    exported = pd.read_csv(tmp_path / "emb.csv")
    assert list(exported.columns[:2]) == ["clip_id", "neural.mn04_as.emb_000"]
    paths = [str(folder / "ab"[i // 2] / f"c{i}.wav") for i in range(4)]
    exported.iloc[:4].drop(columns="clip_id").assign(path=paths).to_csv(
        tmp_path / "folder.csv", index=False)
    code = main(["import-embeddings", *common, "--name", "mine", "--from",
                 str(tmp_path / "folder.csv")])
    assert code == 0, capsys.readouterr().err
    assert "4 clips imported (5 dimensions)" in capsys.readouterr().out
    np.testing.assert_array_equal(store.read("folder", "neural.mine").to_numpy()[:, 4:],
                                  exported.iloc[:4, 1:].to_numpy(np.float32))
    exported.iloc[:4].to_csv(tmp_path / "bad.csv", index=False)
    assert main(["import-embeddings", *common, "--name", "bad", "--from",
                 str(tmp_path / "bad.csv")]) == 2
    assert capsys.readouterr().err.strip().startswith("featurekit: error: ")


@pytest.mark.filterwarnings("ignore::featurekit.datasets.DatasetWarning")  # assigned folds
def test_benchmark_command_runs_on_an_imported_model_and_names_the_import_when_absent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fixtures_audio import make_folder_dataset

    from featurekit.datasets import load_dataset

    root = make_folder_dataset(tmp_path / "audio", clips_per_class=10, duration=0.5)
    clips = load_dataset("folder", root).clips
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(len(clips), 3)) + 2 * clips[["label_id"]].to_numpy(),
                         columns=["a", "b", "c"]).assign(clip_id=clips["clip_id"].to_numpy())
    table.to_csv(tmp_path / "mine.csv", index=False)
    common = ["--dataset", "folder", "--data-dir", str(root), "--store", str(tmp_path / "s")]
    quick = ["--families", "spectral", "--heads", "logreg", "--fusions", "early", "--repeats",
             "1", "--seeds", "1", "--bootstrap", "100", "--out", str(tmp_path / "out")]
    assert main(["benchmark", *common, "--model", "mine", *quick]) == 2
    assert "import-embeddings --name mine" in capsys.readouterr().err
    assert main(["import-embeddings", *common, "--name", "mine", "--from",
                 str(tmp_path / "mine.csv")]) == 0
    assert main(["benchmark", *common, "--model", "mine", *quick]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["branches"]) == {"spectral", "neural.mine"}
    assert results["branches"]["neural.mine"] == 3
    assert results["provenance"]["neural.mine"]["imported"]
    assert FeatureStore(tmp_path / "s").branches("audio") == ["handcrafted", "neural.mine"]
