"""ExtractionConfig: validation, round trips and a stable hash."""

from __future__ import annotations

import pytest

from featurekit import ExtractionConfig
from featurekit.errors import ConfigError


def test_dict_and_toml_round_trip(tmp_path):
    config = ExtractionConfig(n_mfcc=13, families=("timbre", "pitch"), max_duration_s=4.0)
    assert ExtractionConfig.from_dict(config.to_dict()) == config
    assert ExtractionConfig.from_toml(config.to_toml()) == config
    path = tmp_path / "cfg.toml"
    path.write_text(config.to_toml())
    assert ExtractionConfig.from_toml(path) == config
    assert ExtractionConfig.from_toml(str(path)) == config


def test_toml_extraction_table():
    assert ExtractionConfig.from_toml("[extraction]\nn_mels = 40\n").n_mels == 40


def test_hash_is_stable_and_sensitive():
    # A literal: the hash must not change across platforms, runs or Python versions.
    assert ExtractionConfig().config_hash() == "45569c4051805522"
    assert ExtractionConfig(hop_length=256).config_hash() != ExtractionConfig().config_hash()
    # Canonical order: the families' order as given does not matter.
    assert (ExtractionConfig(families=("spectral", "pitch")).config_hash()
            == ExtractionConfig(families=("pitch", "spectral")).config_hash())


def test_immutable():
    with pytest.raises(AttributeError):
        ExtractionConfig().n_fft = 1024  # type: ignore[misc]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_fft": 1000}, "power of two"),
    ({"hop_length": 4096}, "exceeds n_fft"),
    ({"fmin_hz": 20.0}, "raise fmin_hz"),
    ({"fmax_hz": 20000.0}, "Nyquist"),
    ({"n_mfcc": 80}, "cannot exceed n_mels"),
    ({"families": ()}, "must not be empty"),
    ({"functionals": ("mean", "mode")}, "unknown functionals"),
    ({"voicing_threshold": 1.0}, "between 0 and 1"),
    ({"sample_rate": -1}, "positive integer"),
    ({"max_duration_s": 0}, "positive"),
])
def test_validation_messages(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ExtractionConfig(**kwargs)


def test_unknown_keys_and_bad_toml():
    with pytest.raises(ConfigError, match="unknown configuration key"):
        ExtractionConfig.from_dict({"n_fft": 2048, "nfft": 1024})
    with pytest.raises(ConfigError, match="invalid TOML"):
        ExtractionConfig.from_toml("n_fft = = 3")
