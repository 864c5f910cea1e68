"""NeuralBranch, PretrainedEmbedder and the HEAR API, on an untrained mn04_as: clips decoded
by threads a bounded look-ahead in front of the network, batches per device, float32 on CUDA."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from sklearn.base import clone

from featurekit.computers.base import BranchComputer
from featurekit.computers.neural import NeuralBranch
from featurekit.errors import AudioError, ConfigError
from featurekit.io.audio import load_audio
from featurekit.neural import PretrainedEmbedder, audioset_labels, hear
from featurekit.neural.decoding import load_clip, load_clips
from featurekit.neural.embedding import (
    LOOK_AHEAD_BATCHES,
    MIN_DURATION_S,
    WINDOW_S,
    embed_waveforms,
    float32_precision,
    load_for,
    torch_threads,
    window_starts,
)
from featurekit.neural.registry import DEFAULT_BATCH_SIZES, default_batch_size, load_pretrained
from featurekit.store.records import ClipResult

SR_FILE = 22050


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three generated files at 22.05 kHz (0.5 s, 2 s stereo, 3 s) and their signals."""
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    paths, signals = [], []
    for i, (seconds, channels) in enumerate([(0.5, 1), (2.0, 2), (3.0, 1)]):
        n = int(seconds * SR_FILE)
        t = np.arange(n) / SR_FILE
        y = 0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.05 * rng.standard_normal(n)
        data = np.stack([y] * channels, axis=1) if channels > 1 else y
        path = folder / f"clip{i}.wav"
        sf.write(path, data.astype(np.float32), SR_FILE, subtype="FLOAT")
        paths.append(str(path))
        signals.append(y.astype(np.float32))
    return paths, signals


def test_audioset_labels_are_the_527_classes_in_order():
    labels = audioset_labels()
    assert len(labels) == 527
    assert labels[0] == "Speech" and labels[137] == "Music"


def test_branch_computes_named_columns_and_records_failures(clips, tmp_path):
    paths, _ = clips
    branch = NeuralBranch("mn04_as", "untrained", tags=True, batch_size=2)
    assert isinstance(branch, BranchComputer)
    assert branch.branch == "neural.mn04_as" and branch.process_parallel is False
    names = branch.feature_names
    assert names[0] == "neural.mn04_as.emb_000" and names[383] == "neural.mn04_as.emb_383"
    assert names[384] == "neural.mn04_as.tag_000" and len(names) == 384 + 527
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really")
    results = branch.compute_batch([paths[0], str(tmp_path / "missing.wav"), str(bad),
                                    paths[2]], frames=True)
    assert isinstance(results[1], AudioError) and isinstance(results[2], AudioError)
    for result in (results[0], results[3]):
        assert isinstance(result, ClipResult)
        assert result.values.dtype == np.float32 and result.values.shape == (len(names),)
        assert np.all(np.isfinite(result.values))
        assert np.all((result.values[384:] >= 0) & (result.values[384:] <= 1))
        assert list(result.frames.columns[:2]) == ["time_s", "neural.mn04_as.neuralogram_000"]
        assert result.frames.shape[1] == 1 + 384
    assert any("resampled" in note for note in results[0].notes)
    assert any("zero-padded" in note for note in results[0].notes)  # 0.5 s < 1 s minimum
    # Same clip, other batch companions: same values.
    again = branch.compute_batch([paths[0]])[0]
    np.testing.assert_allclose(again.values, results[0].values, rtol=1e-5, atol=1e-6)
    assert again.frames is None


def test_branch_provenance_flags_untrained_and_survives_pickle(clips):
    branch = NeuralBranch("mn04_as", "untrained")
    provenance = branch.provenance()
    assert provenance["untrained"] is True and provenance["config"]["untrained"] is True
    assert provenance["config_hash"] == branch.config_hash()
    assert NeuralBranch("mn04_as", "untrained", tags=True).config_hash() != branch.config_hash()
    assert NeuralBranch("mn04_as", "untrained", n_threads=2).config_hash() == \
        branch.config_hash()
    branch.compute_batch(clips[0][:1])
    restored = pickle.loads(pickle.dumps(branch))
    assert restored._tagger is None  # the model is reloaded on demand, not pickled
    np.testing.assert_array_equal(restored.compute_batch(clips[0][:1])[0].values,
                                  branch.compute_batch(clips[0][:1])[0].values)


def test_embedder_is_a_well_behaved_sklearn_transformer(clips):
    paths, _ = clips
    embedder = PretrainedEmbedder("mn04_as", weights="untrained", batch_size=2)
    assert clone(embedder).get_params() == embedder.get_params()
    table = embedder.set_output(transform="pandas").fit_transform(paths)
    assert isinstance(table, pd.DataFrame) and table.shape == (3, 384)
    assert list(table.columns) == list(embedder.get_feature_names_out())
    assert table.columns[0] == "neural.mn04_as.emb_000"
    restored = pickle.loads(pickle.dumps(embedder))
    pd.testing.assert_frame_equal(restored.transform(paths), table)
    fresh = clone(embedder)
    assert not hasattr(fresh, "model_")


def test_embedder_takes_arrays_with_their_rate(clips):
    paths, signals = clips
    embedder = PretrainedEmbedder("mn04_as", weights="untrained", tags=True).fit()
    from_files = embedder.transform(paths)
    with pytest.raises(ValueError, match="sr="):
        embedder.transform(signals)
    from_arrays = embedder.set_params(sr=SR_FILE).transform(signals)
    assert from_arrays.shape == (3, 384 + 527)
    # File 1 was written as a stereo copy of the same signal; float WAV is lossless.
    np.testing.assert_allclose(from_arrays, from_files, rtol=1e-4, atol=1e-5)
    with pytest.raises(AudioError, match="NaN"):
        embedder.transform([np.full(SR_FILE, np.nan, dtype=np.float32)])


def test_embedder_requires_fit():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PretrainedEmbedder(weights="untrained").transform(["x.wav"])


@pytest.fixture(scope="module")
def hear_mn04():
    return hear.load_model("untrained", model_name="mn04_as", device="cpu")


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a busy machine, thread spinning makes the 7 passes of a
    timestamp embedding ten times slower."""
    with torch_threads(1):
        yield


def _noise(n_sounds: int, seconds: float, sr: int = 32000, seed: int = 3) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((0.1 * rng.standard_normal((n_sounds, round(seconds * sr))))
                            .astype(np.float32))


@pytest.mark.usefixtures("one_torch_thread")
def test_hear_api_shapes_and_scene_embeddings(hear_mn04):
    model = hear_mn04
    assert model.sample_rate == 32000
    assert model.scene_embedding_size == model.timestamp_embedding_size == 384
    audio = _noise(2, 2.0)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (2, 384) and scene.dtype == torch.float32
    # Scene embeddings are the library's clip embeddings, whatever the timestamp hop.
    expected = [r.embedding for r in embed_waveforms(model.tagger, list(audio.numpy()))]
    np.testing.assert_array_equal(scene.numpy(), np.stack(expected))
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape[:2] == timestamps.shape and embeddings.shape[2] == 384
    assert timestamps.shape[0] == 2 and torch.equal(timestamps[0], timestamps[1])
    assert embeddings.dtype == timestamps.dtype == torch.float32
    with pytest.raises(ValueError, match="n_sounds"):
        hear.get_scene_embeddings(audio[0], model)
    with pytest.raises(ValueError, match="n_sounds"):
        hear.get_timestamp_embeddings(audio[0], model)


def assert_event_resolution(timestamps: torch.Tensor, seconds: float, hop_ms: float,
                            sr: int = 32000) -> None:
    """Exactly regular in float32, on whole samples, first at or before one hop, last within
    one hop of the end and never past it."""
    end_ms = 1000 * seconds
    times = timestamps.numpy()
    assert times.dtype == np.float32
    np.testing.assert_array_equal(np.diff(times), np.float32(hop_ms))
    on_samples = times.astype(np.float64) * sr / 1000
    np.testing.assert_array_equal(on_samples, np.round(on_samples))
    assert 0 <= times[0] <= hop_ms
    assert end_ms - hop_ms <= times[-1] <= end_ms


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("seconds", [1.07, 1.98, 4.0, 60.0])
def test_hear_timestamps_every_50_ms_or_less(hear_mn04, seconds):
    model = hear_mn04
    assert (model.n_shifts, model.hop_samples, model.timestamp_hop_ms) == (8, 1280, 40.0)
    embeddings, timestamps = hear.get_timestamp_embeddings(_noise(1, seconds), model)
    assert embeddings.shape == (1, timestamps.shape[1], 384)
    assert timestamps.shape[1] == pytest.approx(1000 * seconds / model.timestamp_hop_ms, abs=1)
    assert_event_resolution(timestamps[0], seconds, model.timestamp_hop_ms)
    assert torch.isfinite(embeddings).all()


@pytest.mark.usefixtures("one_torch_thread")
def test_hear_rows_are_computed_not_repeated(hear_mn04):
    """Interleaved rows come from differently delayed passes: neighbours differ, and the row
    stamped t is the row of the pass whose row centre falls on t."""
    model, seconds = hear_mn04, 1.98
    audio = _noise(1, seconds)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    neighbours = (embeddings[0, 1:] - embeddings[0, :-1]).abs().amax(dim=1)
    assert bool((neighbours > 0).all())
    hop, period, n = model.hop_samples, 10240, audio.shape[1]
    length = (model.n_shifts - 1) * hop + n + period  # the padding hear.py gives every pass
    for shift in (0, 3):
        padded = torch.zeros((1, length))
        padded[0, shift * hop:shift * hop + n] = audio[0]
        with torch.inference_mode():
            frames = model.tagger(padded)["frames"][0]
        centres_ms = ((np.arange(frames.shape[0]) + 0.5) * period - shift * hop) / 32
        for row, centre in enumerate(centres_ms):
            if 0 <= centre <= 1000 * seconds:
                (index,) = np.flatnonzero(timestamps[0].numpy() == centre)
                torch.testing.assert_close(embeddings[0, index], frames[row])


def test_hear_hop_is_whole_samples_and_milliseconds():
    assert hear.timestamp_hop(10240, 32000, 50.0) == 1280  # 40 ms, not 320 / 7 ms
    assert hear.timestamp_hop(10240, 32000, 30.0) == 640  # 20 ms
    # 320 ms at 22.05 kHz: 40 ms; at most 30 ms is 20 ms (588 samples, 26.67 ms, is not)
    assert hear.timestamp_hop(7056, 22050, 50.0) == 882
    assert hear.timestamp_hop(7056, 22050, 30.0) == 441
    with pytest.raises(ConfigError, match="whole samples and milliseconds"):
        hear.timestamp_hop(10240, 32000, 0.7)


@pytest.mark.usefixtures("one_torch_thread")
def test_hear_hop_is_configurable_and_follows_the_frame_period():
    cnn10 = hear.load_model("untrained", model_name="cnn10", device="cpu")  # 160-ms rows
    assert (cnn10.n_shifts, cnn10.timestamp_hop_ms) == (4, 40.0)
    _, timestamps = hear.get_timestamp_embeddings(_noise(1, 1.07), cnn10)
    assert_event_resolution(timestamps[0], 1.07, 40.0)
    fine = hear.load_model("untrained", model_name="mn04_as", device="cpu", hop_ms=20)
    assert (fine.n_shifts, fine.timestamp_hop_ms) == (16, 20.0)
    _, timestamps = hear.get_timestamp_embeddings(_noise(1, 1.07), fine)
    assert_event_resolution(timestamps[0], 1.07, 20.0)
    coarse = hear.load_model("untrained", model_name="mn04_as", device="cpu", hop_ms=320)
    assert (coarse.n_shifts, coarse.timestamp_hop_ms) == (1, 320.0)
    _, timestamps = hear.get_timestamp_embeddings(_noise(1, 1.07), coarse)
    np.testing.assert_array_equal(timestamps[0].numpy(), [160.0, 480.0, 800.0])
    with pytest.raises(ConfigError, match="hop_ms must be positive"):
        hear.load_model("untrained", model_name="mn04_as", device="cpu", hop_ms=0)


def test_embedder_parameters_are_validated_at_fit(clips):
    from featurekit.errors import ConfigError

    with pytest.raises(ConfigError, match="n_jobs"):
        PretrainedEmbedder("mn04_as", weights="untrained", n_jobs=0).fit()
    with pytest.raises(ConfigError, match="batch_size"):
        PretrainedEmbedder("mn04_as", weights="untrained", batch_size=0).fit()
    every_core = PretrainedEmbedder("mn04_as", weights="untrained", n_jobs=-1).fit()
    single = PretrainedEmbedder("mn04_as", weights="untrained").fit()
    paths = clips[0][:1]
    np.testing.assert_allclose(every_core.transform(paths), single.transform(paths),
                               rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------ decoding threads
@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory):
    """Files of several rates, lengths and channel counts, and one that cannot be decoded."""
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(4)
    paths = []
    for i, (rate, seconds, channels) in enumerate([(22050, 3.0, 1), (44100, 2.0, 2),
                                                   (16000, 12.5, 1), (32000, 0.4, 1),
                                                   (48000, 4.0, 1), (8000, 4.0, 2)]):
        y = 0.1 * rng.standard_normal((int(rate * seconds), channels))
        path = folder / f"clip{i}.flac"
        sf.write(path, y.astype(np.float32), rate, subtype="PCM_16")
        paths.append(str(path))
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    paths.insert(2, str(broken))
    return paths


def _one_clip_at_a_time(model, path: str) -> np.ndarray:
    """The single-process path, one clip per forward pass: load in this process, then each
    window alone through the network (one torch thread, as the branch's default), the
    embedding the mean over windows."""
    rate = model.sample_rate
    y = load_audio(path, rate, min_samples=round(MIN_DURATION_S * rate))[0]
    window = round(WINDOW_S * rate)
    with torch.inference_mode(), torch_threads(1):
        embeddings = [model(torch.from_numpy(y[start:start + window])[None])["embedding"][0]
                      .numpy() for start in window_starts(y.size, window)]
    return np.mean(embeddings, axis=0, dtype=np.float64).astype(np.float32)


def test_decoding_threads_give_the_single_thread_embeddings(mixed_files):
    """Clips decoded by threads: bitwise the single-thread values for the same batches,
    cosine >= 0.99999 to clip-by-clip values for any batch size."""
    alone = NeuralBranch("mn04_as", "untrained", n_workers=2, batch_size=1)
    reference = {path: _one_clip_at_a_time(alone.tagger, path) for path in mixed_files
                 if "broken" not in path}
    results = {(workers, size): NeuralBranch("mn04_as", "untrained", n_workers=workers,
                                             batch_size=size).compute_batch(mixed_files)
               for workers, size in [(2, 1), (1, 3), (2, 3)]}
    for path, one, batched_here, batched in zip(mixed_files, results[2, 1], results[1, 3],
                                                results[2, 3], strict=True):
        if "broken" in path:
            assert all(isinstance(r, AudioError) for r in (one, batched_here, batched))
            continue
        np.testing.assert_array_equal(one.values, reference[path])
        np.testing.assert_array_equal(batched.values, batched_here.values)
        assert batched.notes == batched_here.notes == one.notes
        cosine = batched.values @ reference[path] / (np.linalg.norm(batched.values)
                                                     * np.linalg.norm(reference[path]))
        assert cosine >= 0.99999
    assert any("averaged over 2 windows" in note for note in results[2, 3][3].notes)


class _Counted:
    """Sources read lazily, counting how many have been read."""

    def __init__(self, sources):
        self.sources, self.read = sources, 0

    def __iter__(self):
        for source in self.sources:
            self.read += 1
            yield source


@pytest.mark.parametrize("overlap", [True, False])
def test_decoding_threads_read_a_bounded_look_ahead_in_order(mixed_files, overlap):
    """However many sources: at most ``ahead`` read and not yet handed over; without overlap
    (the CPU), none read while the consumer holds a clip of the current look-ahead; every
    clip as one thread loads it, in order, the corrupt file as its own exception."""
    sources = _Counted(mixed_files * 3)
    ahead = 4
    expected = [load_clip(path, 32000, min_samples=32000) for path in sources.sources]
    loading = load_clips(sources, 32000, min_samples=32000, n_jobs=2, ahead=ahead,
                         overlap=overlap)
    for taken, (loaded, reference) in enumerate(zip(loading, expected, strict=True)):
        assert sources.read - taken <= ahead
        if not overlap:  # read one look-ahead at a time
            assert sources.read == min(len(expected), ahead * (taken // ahead + 1))
        if isinstance(reference, Exception):
            assert isinstance(loaded, AudioError) and "broken.wav" in str(loaded)
            continue
        np.testing.assert_array_equal(loaded[0], reference[0])
        assert loaded[1] == reference[1]
    assert sources.read == len(expected)


def test_decoding_threads_stop_when_the_consumer_stops(mixed_files):
    """Closing the iterator early ends its threads, with nothing more read."""
    before = threading.active_count()
    sources = _Counted(mixed_files * 10)
    loading = load_clips(sources, 32000, min_samples=32000, n_jobs=2, ahead=3)
    next(loading)
    loading.close()
    assert sources.read <= 4
    assert threading.active_count() == before


def test_embedding_looks_ahead_a_few_batches(mixed_files):
    """The store branch reads its clips :data:`LOOK_AHEAD_BATCHES` batches ahead."""
    model = load_pretrained("mn04_as", "untrained", device="cpu")
    sources = _Counted(mixed_files * 4)
    taken = 0
    for _ in load_for(model, sources, n_jobs=2, batch_size=2):
        taken += 1
        assert sources.read - taken < LOOK_AHEAD_BATCHES * 2


def test_embedding_consumes_clips_as_threads_deliver_them(mixed_files):
    """Streamed from the threads (as on a GPU, batches run while later clips are decoded), with
    a clip that failed to load passed through: the values of the same clips listed first."""
    model = load_pretrained("mn04_as", "untrained", device="cpu")
    rate = model.sample_rate
    streamed = embed_waveforms(model, (clip if isinstance(clip, BaseException) else clip[0]
                                       for clip in load_clips(mixed_files, rate, n_jobs=2,
                                                              min_samples=rate)), batch_size=2)
    waveforms = [load_audio(path, rate, min_samples=rate)[0] for path in mixed_files
                 if "broken" not in path]
    listed = embed_waveforms(model, waveforms, batch_size=2)
    assert isinstance(streamed[2], AudioError) and "broken.wav" in str(streamed[2])
    for got, expected in zip(streamed[:2] + streamed[3:], listed, strict=True):
        np.testing.assert_array_equal(got.embedding, expected.embedding)
        np.testing.assert_array_equal(got.frames, expected.frames)


# ------------------------------------------------------------------- devices and precision
def test_default_batch_size_follows_the_device():
    assert default_batch_size("cpu") == DEFAULT_BATCH_SIZES["cpu"] == 8
    assert default_batch_size("cuda:1") == default_batch_size(torch.device("cuda")) == 64
    assert NeuralBranch("mn04_as", "untrained", device="cpu").clips_per_task is None
    assert NeuralBranch("mn04_as", "untrained", device="cuda").clips_per_task == 8 * 64
    assert NeuralBranch("mn04_as", "untrained", device="cuda:0",
                        batch_size=16).clips_per_task == 8 * 16


def test_float32_precision_sets_and_restores_the_tf32_flags():
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    with float32_precision(allow_tf32=False):
        assert not torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32
        with float32_precision(allow_tf32=True):
            assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == flags


def test_tf32_is_in_the_configuration_and_the_device_in_the_provenance():
    plain = NeuralBranch("mn04_as", "untrained", device="cpu")
    tf32 = NeuralBranch("mn04_as", "untrained", device="cpu", allow_tf32=True)
    assert "allow_tf32" not in plain.provenance()["config"]  # hashes of earlier stores hold
    assert tf32.provenance()["config"]["allow_tf32"] is True
    assert tf32.config_hash() != plain.config_hash()
    assert plain.provenance()["device"] == "cpu" and plain.provenance()["allow_tf32"] is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_embeddings_agree_with_the_cpu_in_float32(mixed_files):
    paths = [path for path in mixed_files if "broken" not in path]
    cpu = NeuralBranch("mn04_as", "untrained", device="cpu", n_workers=2).compute_batch(paths)
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    cuda = NeuralBranch("mn04_as", "untrained", device="cuda", n_workers=2).compute_batch(paths)
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == flags
    for on_cpu, on_cuda in zip(cpu, cuda, strict=True):
        reference = on_cpu.values.astype(np.float64)
        cosine = on_cuda.values @ reference / (np.linalg.norm(on_cuda.values)
                                               * np.linalg.norm(reference))
        assert cosine >= 0.99999
        assert np.abs(on_cuda.values - reference).max() <= 1e-4 * np.abs(reference).max()
