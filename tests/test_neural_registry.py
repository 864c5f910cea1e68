"""Weights resolution, loading and error messages of featurekit.neural.registry."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch

from featurekit.errors import WeightsError
from featurekit.neural import (
    load_pretrained,
    model_info,
    registry,
    resolve_weights,
    weights_cache_dir,
)

SMALL = "mn01_as"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No shared weights dir, a private cache, downloads off unless a test allows them."""
    monkeypatch.delenv("FEATUREKIT_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("FEATUREKIT_OFFLINE", "1")
    monkeypatch.setenv("FEATUREKIT_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """A state_dict file for mn01_as (untrained weights, saved like the published file)."""
    path = tmp_path_factory.mktemp("ckpt") / model_info(SMALL).file_name
    torch.save(load_pretrained(SMALL, "untrained", device="cpu").state_dict(), path)
    return path


def test_explicit_path_wins_and_missing_explicit_path_is_an_error(small_checkpoint, tmp_path):
    assert resolve_weights(SMALL, small_checkpoint) == small_checkpoint
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights(SMALL, tmp_path / "nope.pt")


def test_registered_file_is_found_in_a_subfolder_of_the_weights_dir(
        small_checkpoint, tmp_path, monkeypatch):
    nested = tmp_path / "weights" / "efficientat" / "v1"
    nested.mkdir(parents=True)
    target = nested / small_checkpoint.name
    target.write_bytes(small_checkpoint.read_bytes())
    monkeypatch.setenv("FEATUREKIT_WEIGHTS_DIR", str(tmp_path / "weights"))
    assert resolve_weights(SMALL) == target


def test_cache_dir_is_used_after_the_weights_dir(small_checkpoint, tmp_path, monkeypatch):
    assert weights_cache_dir() == tmp_path / "cache" / "featurekit" / "weights"
    monkeypatch.setenv("FEATUREKIT_WEIGHTS_DIR", str(tmp_path / "empty"))
    cached = weights_cache_dir() / small_checkpoint.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(small_checkpoint.read_bytes())
    assert resolve_weights(SMALL) == cached


def test_offline_miss_names_file_url_and_variable():
    info = model_info("mn04_as")
    with pytest.raises(WeightsError) as caught:
        resolve_weights("mn04_as")
    message = str(caught.value)
    assert info.file_name in message and info.url in message
    assert "FEATUREKIT_WEIGHTS_DIR" in message and "FEATUREKIT_OFFLINE" in message


def test_unknown_model_name_lists_the_available_ones():
    from featurekit.errors import ConfigError

    with pytest.raises(ConfigError, match="mn04_as"):
        load_pretrained("resnet9000")


def test_loaded_weights_are_recorded_with_their_checksum(small_checkpoint):
    model = load_pretrained(SMALL, small_checkpoint, device="cpu")
    expected = hashlib.sha256(small_checkpoint.read_bytes()).hexdigest()
    assert model.weights_info == {"name": SMALL, "file": small_checkpoint.name,
                                  "sha256": expected, "untrained": False}


def test_wrapped_checkpoint_is_unwrapped(small_checkpoint, tmp_path):
    state = torch.load(small_checkpoint, weights_only=True)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"iteration": 7, "model": state}, wrapped)
    model = load_pretrained(SMALL, wrapped, device="cpu")
    assert torch.equal(model.state_dict()["classifier.5.bias"], state["classifier.5.bias"])


def test_checkpoint_of_another_architecture_is_refused(small_checkpoint):
    with pytest.raises(WeightsError, match="does not fit mn02_as"):
        load_pretrained("mn02_as", small_checkpoint, device="cpu")


def test_corrupt_or_pickled_object_files_are_refused(small_checkpoint, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="not unpickled"):
        load_pretrained(SMALL, corrupt, device="cpu")
    with_numpy = tmp_path / "with_sampler.pth"
    torch.save({"model": torch.load(small_checkpoint, weights_only=True),
                "sampler": np.arange(3)}, with_numpy)
    with pytest.raises(WeightsError, match="checksum matches no registered"):
        load_pretrained(SMALL, with_numpy, device="cpu")


def test_registered_file_with_pickled_objects_is_loaded(small_checkpoint, tmp_path,
                                                        monkeypatch):
    # The published PANNs files also hold numpy objects; known checksums make them loadable.
    with_numpy = tmp_path / "with_sampler.pth"
    torch.save({"model": torch.load(small_checkpoint, weights_only=True),
                "sampler": np.arange(3)}, with_numpy)
    digest = hashlib.md5(with_numpy.read_bytes()).hexdigest()
    entry = dataclasses.replace(model_info(SMALL), md5=digest)
    monkeypatch.setitem(registry._REGISTRY, SMALL, entry)
    assert not load_pretrained(SMALL, with_numpy, device="cpu").weights_info["untrained"]


@pytest.fixture
def served(small_checkpoint):
    """An HTTP server on 127.0.0.1 serving the checkpoint's folder."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(small_checkpoint.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{small_checkpoint.name}"
    server.shutdown()
    server.server_close()


def test_download_into_cache_when_online(served, small_checkpoint, monkeypatch):
    sha256 = hashlib.sha256(small_checkpoint.read_bytes()).hexdigest()
    entry = dataclasses.replace(model_info(SMALL), url=served, sha256=sha256)
    monkeypatch.setitem(registry._REGISTRY, SMALL, entry)
    with pytest.raises(WeightsError):
        resolve_weights(SMALL)  # offline by environment
    path = resolve_weights(SMALL, offline=False, progress=False)
    assert path == weights_cache_dir() / small_checkpoint.name
    assert path.read_bytes() == small_checkpoint.read_bytes()
    assert resolve_weights(SMALL) == path  # now cached: found offline


def test_download_with_wrong_checksum_leaves_nothing(served, monkeypatch):
    from featurekit.errors import DownloadError

    entry = dataclasses.replace(model_info(SMALL), url=served, sha256="0" * 64)
    monkeypatch.setitem(registry._REGISTRY, SMALL, entry)
    with pytest.raises(DownloadError):
        resolve_weights(SMALL, offline=False, progress=False)
    assert not (weights_cache_dir() / entry.file_name).exists()


def test_found_files_must_match_the_registered_checksum(small_checkpoint, tmp_path, monkeypatch):
    good = hashlib.sha256(small_checkpoint.read_bytes()).hexdigest()
    monkeypatch.setitem(registry._REGISTRY, SMALL,
                        dataclasses.replace(model_info(SMALL), sha256=good, md5=None))
    weights = tmp_path / "weights"
    weights.mkdir()
    target = weights / small_checkpoint.name
    target.write_bytes(small_checkpoint.read_bytes())
    monkeypatch.setenv("FEATUREKIT_WEIGHTS_DIR", str(weights))
    assert resolve_weights(SMALL) == target
    target.write_bytes(small_checkpoint.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(WeightsError, match="does not match the published checksum"):
        resolve_weights(SMALL)
