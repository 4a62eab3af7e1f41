"""Project exception types: one per kind of failure, each naming the item and the reason.

The pipeline turns these into quarantine entries; the CLI turns them into exit code 2
and one readable line.
"""

from __future__ import annotations


class IntervoxError(Exception):
    """Base class for every error intervox raises on purpose."""


class ConfigError(IntervoxError):
    """A config file or override is wrong: unknown key, bad type, unreadable YAML."""


class AudioError(IntervoxError):
    """Audio that cannot be used: unreadable, empty, silent, non-finite, truncated."""


class SynthesisError(IntervoxError):
    """A TTS engine failed or produced unusable output for one text/voice."""


class InterventionError(IntervoxError):
    """An intervention op cannot be applied to its input."""


class ManifestError(IntervoxError):
    """A manifest line is malformed: missing fields, duplicate ids, missing files."""


class ShardError(IntervoxError):
    """A shard is corrupt, truncated, unsafe, or does not match its sidecar."""


class UpstreamError(IntervoxError):
    """A speech foundation model cannot be found or loaded offline."""


class TrainingError(IntervoxError):
    """Training cannot continue (non-finite loss, no usable data)."""


class LockError(IntervoxError):
    """An output folder is in use by another run (intervox/locking.py names the owner)."""


class QuarantineError(IntervoxError):
    """Too large a share of a build's input was quarantined (more than max_quarantine_fraction)."""
