"""FSD50K's clip metadata groups each clip with its uploader's others (the group the splits
inside a set keep whole and the intervals resample); without it each clip stands alone."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from test_multilabel import DEV, EVAL, make_fsd50k

from featurekit.datasets import DatasetWarning, load_dataset, verify_dataset
from featurekit.errors import DatasetError

UPLOADERS = {"11": "ann", "12": "ann", "13": "bo", "14": "ann", "21": "cy", "22": "cy"}


def load_quietly(root: Path) -> object:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "fsd50k: partial copy", DatasetWarning)
        return load_dataset("fsd50k", root)


def recordings(root: Path) -> dict[str, str]:
    return load_quietly(root).clips.set_index("clip_id")["recording"].to_dict()


def test_clips_of_one_uploader_share_a_group(tmp_path: Path) -> None:
    make_fsd50k(tmp_path, dev=DEV, evaluation=EVAL, uploaders=UPLOADERS)
    assert recordings(tmp_path) == {clip: f"uploader:{name}" for clip, name in UPLOADERS.items()}


def test_without_the_metadata_each_clip_is_its_own_group(tmp_path: Path) -> None:
    make_fsd50k(tmp_path, dev=DEV, evaluation=EVAL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "fsd50k: partial copy", DatasetWarning)
        clips = load_dataset("fsd50k", tmp_path).clips
    assert (clips["recording"] == clips["clip_id"]).all()
    report = verify_dataset("fsd50k", tmp_path)
    assert "uploaders" in str(report) and "absent" in str(report)


def test_a_clip_the_metadata_does_not_list_stands_alone_with_a_warning(tmp_path: Path) -> None:
    make_fsd50k(tmp_path, dev=DEV, evaluation=EVAL,
                uploaders={clip: name for clip, name in UPLOADERS.items() if clip != "13"})
    # An entry without an uploader is no uploader either.
    path = tmp_path / "FSD50K.metadata" / "eval_clips_info_FSD50K.json"
    info = json.loads(path.read_text())
    info["22"]["uploader"], info["21"]["uploader"] = " ", " cy "  # names are stripped
    path.write_text(json.dumps(info))
    with pytest.warns(DatasetWarning) as caught:
        groups = load_dataset("fsd50k", tmp_path).clips
    messages = [str(w.message) for w in caught]
    assert any("1 of 4 dev clip(s) have no uploader" in m for m in messages)
    assert any("1 of 2 eval clip(s) have no uploader" in m for m in messages)
    found = groups.set_index("clip_id")["recording"].to_dict()
    assert found["13"] == "13" and found["22"] == "22" and found["11"] == found["14"]
    assert found["21"] == "uploader:cy"


def test_an_empty_clip_metadata_file_is_warned_about(tmp_path: Path) -> None:
    make_fsd50k(tmp_path, dev=DEV, evaluation=EVAL, uploaders={})
    with pytest.warns(DatasetWarning, match="4 of 4 dev clip.*no uploader"):
        load_dataset("fsd50k", tmp_path)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not readable JSON"),
    ("[1, 2]", "expected an object mapping each fname to its clip info, found list"),
])
def test_malformed_clip_metadata_is_refused_naming_the_file(tmp_path: Path, content: str,
                                                           message: str) -> None:
    make_fsd50k(tmp_path, dev=DEV, evaluation=EVAL, uploaders=UPLOADERS)
    path = tmp_path / "FSD50K.metadata" / "dev_clips_info_FSD50K.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=f"{path.name}.*{message}"):
        load_quietly(tmp_path)


def test_verification_counts_the_clips_with_an_uploader(tmp_path: Path) -> None:
    make_fsd50k(tmp_path, dev=DEV, evaluation=EVAL, uploaders=UPLOADERS)
    report = verify_dataset("fsd50k", tmp_path)
    line = next(check for check in report.checks if check[0] == "uploaders")
    assert line == ("uploaders", True, "6 of 6 listed clips")
