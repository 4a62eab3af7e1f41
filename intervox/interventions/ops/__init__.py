"""Every intervention op, one module each; importing this package fills the registry."""

from intervox.interventions.ops import (  # noqa: F401
    coqui_clone,
    coqui_vc,
    gain_clip,
    nansy,
    noise,
    praat_gender,
    respeak,
    reverb,
    telephone,
    voice_swap,
    world_vc,
)
