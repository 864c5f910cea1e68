"""``featurekit datasets`` commands: thin wrappers with the documented exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_audio import make_esc50

from featurekit.cli import main


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for expected in ("urbansound8k", "8732 clips", "esc50", "esc10", "folder", "csv"):
        assert expected in out


def test_verify_complete_subset_passes(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # an ESC-10 copy with exactly the official 80 clips per fold
    classes = ("dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby",
               "sneezing", "clock_tick", "helicopter", "chainsaw")
    make_esc50(tmp_path, classes=classes, clips_per_fold=80, duration=0.01)
    assert main(["datasets", "verify", "esc10", "--data-dir", str(tmp_path)]) == 0
    assert "esc10: complete and consistent" in capsys.readouterr().out


def test_verify_incomplete_copy_fails(esc50_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "verify", "esc50", "--data-dir", str(esc50_dir)]) == 1
    out = capsys.readouterr().out
    assert "FAIL clips listed: 20 (expected 2000)" in out and "PROBLEMS FOUND" in out


def test_input_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "verify", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert main(["datasets", "verify", "esc50", "--data-dir", str(tmp_path)]) == 2
    assert "no copy found" in capsys.readouterr().err


def test_csv_data_dir_says_what_it_expected(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.csv").write_text("path,label\nx.wav,a\n")
    (tmp_path / "b.csv").write_text("path,label\nx.wav,a\n")
    assert main(["extract", "--dataset", "csv", "--data-dir", str(tmp_path),
                 "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds 2 CSV files: a.csv, b.csv" in err
    assert "or a folder holding exactly one such CSV" in err
