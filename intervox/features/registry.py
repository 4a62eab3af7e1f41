"""Upstream names -> loaded Upstreams: `whisper-base`, `whisper-tiny.en`, `hf:<id or directory>`,
`finetuned:RUN_DIR@ALPHA` (a model merged by `intervox merge`, see features/finetuned.py)."""

from __future__ import annotations

from intervox.errors import UpstreamError
from intervox.features.base import Upstream, resolve_device

DEFAULT_UPSTREAM = "whisper-base"
CT2_UPSTREAMS = ("whisper-base", "whisper-tiny.en")


def available() -> list[str]:
    """Return the built-in upstream names (any `hf:<model>` works too)."""
    return [*CT2_UPSTREAMS, "hf:<model id or directory>", "finetuned:<run dir>@<alpha>"]


def get_upstream(name: str, device: str = "cpu", allow_download: bool = False, *,
                 padded: bool = False) -> Upstream:
    """Return the frozen upstream `name` on `device`, loaded offline.

    `padded` applies to the CTranslate2 Whisper upstreams (30 s input as in Whisper's
    training; default is the 5-7x faster unpadded input). Raises UpstreamError naming the
    missing model/package and how to get it.
    """
    device = resolve_device(device)
    if name in CT2_UPSTREAMS:
        from intervox import assets
        from intervox.features.whisper_ct2 import WhisperCT2Upstream

        model_dir = assets.whisper_base_dir() if name == "whisper-base" else assets.whisper_tiny_en_dir()
        return WhisperCT2Upstream(name, model_dir, device=device, padded=padded)
    if name.startswith("hf:") and len(name) > 3:
        from intervox.features.hf import HFUpstream

        return HFUpstream(name[3:], device=device, allow_download=allow_download)
    if name.startswith("finetuned:") and len(name) > 10:
        from intervox.features.finetuned import load_finetuned

        return load_finetuned(name, device=device, padded=padded)
    raise UpstreamError(f"unknown upstream {name!r}: use one of {', '.join(available())}")
