"""intervox.features: frozen SFM upstreams and the audio-shard -> feature-shard stage.

Public API: `registry.get_upstream(name, device, allow_download)` -> `base.Upstream`;
`extract.extract_features(audio_dir, out_dir, upstream, ...)` -> report dict.
"""
