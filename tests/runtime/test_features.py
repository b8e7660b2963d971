import numpy as np
import pytest

from adaptwin.runtime.features import LogMel, mel_filters


@pytest.mark.parametrize("n_mels", [80, 128])
def test_numpy_log_mel_matches_transformers(n_mels):
    from transformers import WhisperFeatureExtractor

    rng = np.random.default_rng(0)
    t = np.arange(7 * 16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    ref = WhisperFeatureExtractor(feature_size=n_mels)([audio], sampling_rate=16000, return_tensors="np").input_features
    ours = LogMel(n_mels)([audio]).input_features
    assert ours.shape == ref.shape == (1, n_mels, 3000)
    assert np.abs(ours - ref).max() <= 1e-4


def test_mel_filters_shape_and_rate_check():
    assert mel_filters(80).shape == (80, 201)
    with pytest.raises(ValueError, match="16000"):
        LogMel(80)([np.zeros(100, np.float32)], sampling_rate=8000)


def test_features_are_freed_as_soon_as_they_are_dropped():
    """No reference cycle keeps a window's features (~1 MB) alive until a full collection:
    in a stream, one per decode piled up between Python's rare gen-2 collections."""
    import gc
    import weakref

    gc.disable()
    try:
        features = LogMel(80)([np.zeros(16000, np.float32)]).input_features
        alive = weakref.ref(features)
        del features
        assert alive() is None
    finally:
        gc.enable()


def test_a_short_context_has_the_windows_first_frames():
    """Features for a dynamic context (the first F frames only) equal the window's first F
    frames when the audio ends before the cut."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(2.3 * 16000))).astype(np.float32)
    mel = LogMel(80)
    full = mel([audio]).input_features  # [1, 80, 3000]
    for frames in (300, 1000):
        np.testing.assert_allclose(mel([audio], frames=frames).input_features, full[..., :frames], atol=1e-6)
