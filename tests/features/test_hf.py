"""hf:<dir> upstreams: tiny random WavLM / HuBERT / wav2vec2 / Whisper saved to temp dirs, loaded offline."""

from __future__ import annotations

import math

import pytest
import torch

from intervox.errors import UpstreamError
from intervox.features.registry import get_upstream

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=10)


def save_tiny(kind: str, directory):
    """Save a randomly initialised tiny model of `kind` + its feature extractor; return (dir, layers)."""
    import transformers as tf

    torch.manual_seed(0)  # test set-up only: deterministic random weights
    if kind == "whisper":
        config = tf.WhisperConfig(d_model=32, encoder_layers=3, encoder_attention_heads=2, decoder_layers=1,
                                  decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                  num_mel_bins=80, max_source_positions=1500, max_target_positions=32)
        tf.WhisperModel(config).save_pretrained(directory)
        tf.WhisperFeatureExtractor(feature_size=80).save_pretrained(directory)
        return directory, 3
    config_cls, model_cls = {"wavlm": (tf.WavLMConfig, tf.WavLMModel),
                             "hubert": (tf.HubertConfig, tf.HubertModel),
                             "wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model)}[kind]
    extra = {"num_buckets": 16, "max_bucket_distance": 50} if kind == "wavlm" else {}
    config = config_cls(**TINY, **extra, feat_extract_norm="layer" if kind == "wavlm" else "group")
    model_cls(config).save_pretrained(directory)
    extractor = tf.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=kind == "wavlm")
    extractor.save_pretrained(directory)
    return directory, 2


@pytest.mark.parametrize("kind", ["wavlm", "hubert", "wav2vec2"])
def test_wav2vec_family_hidden_states(kind, tmp_path, clips):
    d, layers = save_tiny(kind, tmp_path / kind)
    up = get_upstream(f"hf:{d}")
    assert up.identity["name"] == f"hf:{d}"
    assert (up.identity["layers"], up.identity["hidden"], up.num_hidden_states) == (layers, 32, layers + 1)
    assert up.identity["frame_rate"] == 16000 / 20
    short, long_ = clips[0][2], clips[3][2]
    out = up.forward([long_, short])
    for audio, states in zip([long_, short], out, strict=True):
        # conv stack (kernel, stride) = (10, 5), (3, 2), (3, 2): exact output length formula
        n = len(audio)
        for k, s in zip(TINY["conv_kernel"], TINY["conv_stride"], strict=True):
            n = (n - k) // s + 1
        assert states.shape == (layers + 1, n, 32) and states.dtype == torch.float32
        assert torch.isfinite(states).all()
    if kind == "wavlm":  # attention-masked model: a padded clip equals the clip alone
        alone = up.forward([short])[0]
        torch.testing.assert_close(out[1], alone, atol=1e-4, rtol=1e-4)


def test_whisper_encoder_via_hf(tmp_path, clips):
    d, layers = save_tiny("whisper", tmp_path / "whisper")
    up = get_upstream(f"hf:{d}")
    assert (up.identity["layers"], up.identity["hidden"], up.identity["frame_rate"]) == (3, 32, 50.0)
    audio = clips[1][2]
    (states,) = up.forward([audio])
    assert states.shape == (4, math.ceil(math.ceil(len(audio) / 160) / 2), 32)


def test_weights_hash_identifies_the_weights(tmp_path):
    a, _ = save_tiny("hubert", tmp_path / "a")
    b, _ = save_tiny("hubert", tmp_path / "b")
    ha = get_upstream(f"hf:{a}").identity["weights_sha256"]
    assert ha == get_upstream(f"hf:{b}").identity["weights_sha256"]  # same seed, same bytes
    import transformers as tf

    torch.manual_seed(1)
    config = tf.HubertConfig(**TINY)
    tf.HubertModel(config).save_pretrained(b)
    assert get_upstream(f"hf:{b}").identity["weights_sha256"] != ha


def test_missing_hub_model_fails_offline_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    expected = r"'microsoft/wavlm-base-plus' is not available offline.*hf download"
    with pytest.raises(UpstreamError, match=expected):
        get_upstream("hf:microsoft/wavlm-base-plus")


def test_unsupported_model_type(tmp_path):
    import transformers as tf

    tf.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                  vocab_size=20).save_pretrained(tmp_path)
    with pytest.raises(UpstreamError, match="model_type 'bert'"):
        get_upstream(f"hf:{tmp_path}")
