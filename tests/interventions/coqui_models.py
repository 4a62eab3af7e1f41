"""Tiny coqui-tts models with RANDOM weights, built from coqui's own classes, saved as local model files.

They prove the ops' data flow (files -> coqui model -> audio) offline in seconds; the weights are
untrained, so the outputs are noise-like speech-length signals, not voices. Imported by the
test_coqui_* modules (pytest puts this folder on sys.path; there is no __init__.py).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

SKIP_REASON = "coqui-tts is not importable in this venv: run `make test-coqui`"
# `make test-coqui` sets this: there a broken coqui install must fail the tests, not skip them.
REQUIRED = os.environ.get("INTERVOX_REQUIRE_COQUI") == "1"


@functools.cache
def coqui_importable() -> bool:
    """True when coqui-tts and its torchaudio/torchcodec stack import (as the ops' import_coqui checks)."""
    try:
        from TTS.utils import synthesizer  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def coqui_test(fn: Callable) -> Callable:
    """Mark a test that runs a coqui model: `-m coqui` selects it; skipped only where coqui cannot import."""
    skip = not REQUIRED and not coqui_importable()
    return pytest.mark.coqui(pytest.mark.skipif(skip, reason=SKIP_REASON)(fn))

# WavLM-Large's layout (layer-norm extractor, gated relative positions) at toy size: 32-dim, 2 layers,
# the same 320-sample hop. get_wavlm() builds WavLM from checkpoint["cfg"], so this loads as-is.
WAVLM_DIM = 32
WAVLM_CFG = {
    "extractor_mode": "layer_norm", "encoder_layers": 2, "encoder_embed_dim": WAVLM_DIM,
    "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 2, "layer_norm_first": True,
    "conv_feature_layers": f"[({WAVLM_DIM},10,5)] + [({WAVLM_DIM},3,2)] * 4 + [({WAVLM_DIM},2,2)] * 2",
    "conv_bias": False, "normalize": True, "conv_pos": 16, "conv_pos_groups": 4,
    "relative_position_embedding": True, "num_buckets": 32, "max_distance": 128, "gru_rel_pos": True,
    "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
}
# A small HiFi-GAN decoder shared by the FreeVC and OpenVoice toys.
SMALL_DECODER = {"inter_channels": 16, "hidden_channels": 16, "filter_channels": 32,
                 "upsample_initial_channel": 32, "resblock_kernel_sizes": [3],
                 "resblock_dilation_sizes": [[1, 3, 5]]}


def _seed() -> None:
    import torch

    torch.manual_seed(0)


def _wake(model: object) -> object:
    """Give zero-initialised weights small random values and return `model`.

    VITS-style flows start as the identity (their output convs are zeroed), so an untrained
    OpenVoice would ignore the target voice entirely; trained ones do not.
    """
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.1)
    return model


def save_wavlm(path: Path) -> Path:
    """Write a random toy WavLM as {"cfg", "model"} (WavLM-Large.pt's format) and return its path."""
    import torch
    from TTS.vc.layers.freevc.wavlm.wavlm import WavLM, WavLMConfig

    _seed()
    torch.save({"cfg": WAVLM_CFG, "model": WavLM(WavLMConfig(WAVLM_CFG)).state_dict()}, path)
    return path


def save_openvoice(model_dir: Path) -> Path:
    """Write checkpoint.pth + OpenVoice's ORIGINAL-format config.json (data.*, model.*) into `model_dir`."""
    import torch
    from TTS.vc.configs.openvoice_config import OpenVoiceConfig
    from TTS.vc.models.openvoice import OpenVoice

    model_dir.mkdir(parents=True, exist_ok=True)
    data = {"sampling_rate": 22050, "filter_length": 1024, "hop_length": 256, "win_length": 1024}
    model = {**SMALL_DECODER, "gin_channels": 16, "zero_g": True}
    (model_dir / "config.json").write_text(json.dumps({"_version_": "v2", "data": data, "model": model}))
    cfg = OpenVoiceConfig()
    for k, v in model.items():
        cfg.model_args[k] = v
    _seed()
    torch.save({"model": _wake(OpenVoice(cfg)).state_dict()}, model_dir / "checkpoint.pth")
    return model_dir


def save_freevc(model_dir: Path, wavlm: Path, *, use_spk: bool = False) -> Path:
    """Write a coqui FreeVC config.json + model.pth (random, over the toy WavLM) into `model_dir`.

    use_spk=True takes FreeVC's external 256-dim speaker encoder (built here from a local file).
    """
    import torch
    from TTS.vc.configs.freevc_config import FreeVCConfig

    from intervox.interventions.ops._coqui import tts_home_with_wavlm
    from intervox.interventions.ops.coqui_vc import _freevc_class

    model_dir.mkdir(parents=True, exist_ok=True)
    cfg = FreeVCConfig()
    for k, v in {**SMALL_DECODER, "ssl_dim": WAVLM_DIM, "gin_channels": 256 if use_spk else 16,
                 "use_spk": use_spk}.items():
        cfg.model_args[k] = v
    cfg.save_json(str(model_dir / "config.json"))
    spk = save_freevc_speaker_encoder(model_dir.parent / "speaker_encoder.pt") if use_spk else None
    _seed()
    with tts_home_with_wavlm(wavlm):
        state = _wake(_freevc_class(spk)(cfg)).state_dict()
    torch.save({"model": state}, model_dir / "model.pth")
    return model_dir


def save_freevc_speaker_encoder(path: Path) -> Path:
    """Write a random FreeVC speaker encoder ({"model_state": ...}, coqui's speaker_encoder.pt format)."""
    import torch
    from TTS.vc.layers.freevc.speaker_encoder import hparams as hp

    _seed()
    net = torch.nn.ModuleDict({
        "lstm": torch.nn.LSTM(hp.mel_n_channels, hp.model_hidden_size, hp.model_num_layers, batch_first=True),
        "linear": torch.nn.Linear(hp.model_hidden_size, hp.model_embedding_size)})
    torch.save({"model_state": net.state_dict()}, path)
    return path


def save_knnvc(model_dir: Path, vocoder_dir: Path) -> tuple[Path, Path]:
    """Write kNN-VC's config.json (toy WavLM layer/dim) and a random WavLM HiFi-GAN vocoder.

    The generator mirrors coqui's wavlm-hifigan_prematched: a HiFi-GAN whose pre_linear layer
    reads the (1, frames, dim) features kNN-VC returns; 320x upsampling gives 16 kHz audio. The
    config is MelGAN-style only so the discriminator every GAN checkpoint carries stays tiny.
    """
    import torch
    from TTS.vc.configs.knnvc_config import KNNVCConfig
    from TTS.vocoder.configs import MelganConfig
    from TTS.vocoder.models.gan import GAN

    model_dir.mkdir(parents=True, exist_ok=True)
    vocoder_dir.mkdir(parents=True, exist_ok=True)
    cfg = KNNVCConfig(wavlm_layer=2)
    cfg.model_args.ssl_dim = WAVLM_DIM
    cfg.save_json(str(model_dir / "config.json"))
    vcfg = MelganConfig(
        generator_model="hifigan_generator",
        generator_model_params={
            "in_channels": 16, "pre_linear": WAVLM_DIM, "inference_padding": 0,
            "upsample_factors": [10, 8, 4], "upsample_kernel_sizes": [20, 16, 8],
            "upsample_initial_channel": 32, "resblock_type": "1", "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]]},
        discriminator_model_params={"base_channels": 4, "max_channels": 16, "downsample_factors": [4, 4]})
    vcfg.audio.sample_rate = 16000
    vcfg.save_json(str(vocoder_dir / "config.json"))
    _seed()
    torch.save({"model": GAN(vcfg).state_dict()}, vocoder_dir / "model.pth")
    return model_dir, vocoder_dir


YOURTTS_LANGUAGES = {"en": 0, "fr-fr": 1, "pt-br": 2}  # YourTTS's own language ids


def save_yourtts(model_dir: Path) -> Path:
    """Write a random toy YourTTS (VITS + d-vectors from a speaker encoder) in coqui's zip layout.

    config.json names its side files on a training machine (/train/...), as coqui's released
    zip does: the op must re-point them into model_dir.
    """
    import torch
    from TTS.config.shared_configs import BaseAudioConfig
    from TTS.encoder.configs.speaker_encoder_config import SpeakerEncoderConfig
    from TTS.encoder.utils.generic_utils import setup_encoder_model
    from TTS.tts.configs.shared_configs import CharactersConfig
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits

    model_dir.mkdir(parents=True, exist_ok=True)
    _seed()
    se = SpeakerEncoderConfig(num_loader_workers=0, num_classes_in_batch=2, num_utter_per_class=2)
    # The released YourTTS encoder is a ResNet; a 1-layer LSTM takes the same path 20x faster.
    se.model_params = {"model_name": "lstm", "input_dim": 40, "proj_dim": 16, "lstm_dim": 32,
                       "num_lstm_layers": 1, "use_torch_spec": True}
    se.audio.update({"sample_rate": 16000, "fft_size": 512, "win_length": 400, "hop_length": 160,
                     "num_mels": 40, "preemphasis": 0.97})
    se.save_json(str(model_dir / "config_se.json"))
    torch.save({"model": setup_encoder_model(se).state_dict()}, model_dir / "model_se.pth")
    (model_dir / "language_ids.json").write_text(json.dumps(YOURTTS_LANGUAGES))
    (model_dir / "speakers.json").write_text(json.dumps(
        {f"clip{i}.wav": {"name": f"spk{i}", "embedding": torch.randn(16).tolist()} for i in range(2)}))
    cfg = VitsConfig(
        use_phonemes=False, text_cleaner="multilingual_cleaners", add_blank=True,
        characters=CharactersConfig(
            characters_class="TTS.tts.models.vits.VitsCharacters", pad="_", eos="&", bos="*", blank=None,
            characters="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", punctuations="!'(),-.:;? ",
            phonemes=""),
        audio=BaseAudioConfig(sample_rate=16000, fft_size=1024, win_length=1024, hop_length=256, num_mels=80),
        use_d_vector_file=True, d_vector_dim=16)
    cfg.model_args.update({
        "hidden_channels": 16, "hidden_channels_ffn_text_encoder": 32, "num_layers_text_encoder": 1,
        "num_layers_posterior_encoder": 1, "num_layers_flow": 1, "upsample_initial_channel_decoder": 32,
        "resblock_kernel_sizes_decoder": [3], "resblock_dilation_sizes_decoder": [[1, 3, 5]],
        "init_discriminator": False, "use_language_embedding": True, "use_d_vector_file": True,
        "d_vector_dim": 16, "use_speaker_encoder_as_loss": True})
    side = {"d_vector_file": "speakers.json", "language_ids_file": "language_ids.json",
            "speaker_encoder_model_path": "model_se.pth", "speaker_encoder_config_path": "config_se.json"}
    for where in (model_dir, Path("/train/yourtts")):  # build from local paths, ship training paths
        for field, name in side.items():
            cfg.model_args[field] = [str(where / name)] if field == "d_vector_file" else str(where / name)
        cfg.d_vector_file = [str(where / "speakers.json")]
        if where == model_dir:
            torch.save({"model": Vits(cfg).state_dict()}, model_dir / "model_file.pth")
    cfg.save_json(str(model_dir / "config.json"))
    return model_dir


def save_xtts(model_dir: Path) -> Path:
    """Write a random toy XTTS v2 (1-layer 64-dim GPT, coqui's fixed HiFi-GAN decoder) with its files.

    vocab.json is a character-level tokenizer with XTTS's special tokens ([START], [STOP], [SPACE],
    [en]); 12 audio tokens at most keep the untrained sampler (it never stops) to ~0.5 s of audio.
    """
    import torch
    from tokenizers import Tokenizer, models
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    model_dir.mkdir(parents=True, exist_ok=True)
    special = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]"]
    vocab = {t: i for i, t in enumerate([*special, *"abcdefghijklmnopqrstuvwxyz.,!?'-"])}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.add_special_tokens(special)
    tokenizer.save(str(model_dir / "vocab.json"))
    cfg = XttsConfig()
    cfg.model_args.update({"gpt_layers": 1, "gpt_n_model_channels": 64, "gpt_n_heads": 2,
                           "gpt_max_audio_tokens": 12, "decoder_input_dim": 64, "gpt_num_audio_tokens": 258,
                           "gpt_start_audio_token": 256, "gpt_stop_audio_token": 257})
    cfg.save_json(str(model_dir / "config.json"))
    _seed()
    xtts = Xtts(cfg)
    xtts.tokenizer = VoiceBpeTokenizer(str(model_dir / "vocab.json"))
    xtts.init_models()  # sizes the GPT's text embedding from the tokenizer, as load_checkpoint does
    torch.save({"model": xtts.state_dict()}, model_dir / "model.pth")
    return model_dir
