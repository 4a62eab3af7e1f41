"""`intervox merge`: Speech-FT's weight-space interpolation of a fine-tuned upstream with its base.

theta(alpha) = theta_0 + alpha * (theta_ft - theta_0) for every tensor of the upstream's
state_dict (Lin et al. 2025; nervjack2/Speech-FT `merge_utils.MergeTools.linear`), computed in
float64 and stored in the tensor's dtype. alpha = 0 and alpha = 1 are the two models themselves,
copied bit for bit (float arithmetic would round theta_0 + (theta_ft - theta_0) away from theta_ft).
Each merged model is RUN/merged/alpha-A.safetensors, loadable as the upstream `finetuned:RUN@A`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from intervox import __version__
from intervox.errors import TrainingError, UpstreamError
from intervox.features.finetuned import METADATA_KEY, alpha_tag, read_merged_metadata, upstream_module
from intervox.features.registry import get_upstream
from intervox.training.finetune import FINETUNED_FILE

log = logging.getLogger(__name__)


def merge_state(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor],
                alpha: float) -> dict[str, torch.Tensor]:
    """Return theta_0 + alpha * (theta_ft - theta_0) per tensor (exact copies at alpha 0 and 1)."""
    if set(base) != set(tuned):
        extra = sorted(set(base) ^ set(tuned))
        raise TrainingError(f"the fine-tuned and base upstreams have different tensors (e.g. {extra[0]!r})")
    out = {}
    for k, t0 in base.items():
        t1 = tuned[k]
        if t0.shape != t1.shape:
            raise TrainingError(f"tensor {k!r}: base shape {list(t0.shape)} but fine-tuned {list(t1.shape)}")
        if alpha == 0 or not t0.is_floating_point():
            out[k] = t0.detach().cpu().clone()
        elif alpha == 1:
            out[k] = t1.detach().cpu().clone()
        else:
            a, b = t0.detach().cpu().double(), t1.detach().cpu().double()
            out[k] = (a + alpha * (b - a)).to(t0.dtype)
    return out


def run_metadata(run_dir: Path) -> dict:
    """Return the metadata of RUN/finetuned.safetensors (base upstream, config, steps)."""
    path = run_dir / FINETUNED_FILE
    if not path.is_file():
        raise TrainingError(f"{run_dir}: no {FINETUNED_FILE} (finish `intervox finetune` into it first)")
    try:
        return read_merged_metadata(path, required=("base",))
    except UpstreamError as exc:
        raise TrainingError(str(exc)) from exc


def merge_run(run_dir: str | Path, alphas: list[float]) -> list[Path]:
    """Write RUN/merged/alpha-A.safetensors for each alpha; return their paths."""
    run_dir = Path(run_dir)
    meta = run_metadata(run_dir)
    base = meta["base"]
    upstream = get_upstream(base["name"], device="cpu")
    if upstream.identity["weights_sha256"] != base["weights_sha256"]:
        raise TrainingError(f"{run_dir} was fine-tuned from {base['name']} with weights "
                            f"{base['weights_sha256'][:12]}, but that upstream now has weights "
                            f"{upstream.identity['weights_sha256'][:12]}")
    theta0 = upstream_module(upstream).state_dict()
    tuned = load_file(str(run_dir / FINETUNED_FILE))
    out_dir = run_dir / "merged"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for alpha in alphas:
        if not 0 <= alpha <= 1:
            raise TrainingError(f"--alpha {alpha}: must lie in [0, 1] (0 = base model, 1 = fine-tuned)")
        merged = merge_state(theta0, tuned, alpha)
        path = out_dir / f"alpha-{alpha_tag(alpha)}.safetensors"
        tmp = path.with_name(path.name + ".tmp")
        save_file(merged, str(tmp), metadata={METADATA_KEY: json.dumps({
            "alpha": float(alpha), "base": base, "run_dir": str(run_dir), "config": meta.get("config"),
            "steps": meta.get("steps"), "intervox": __version__}, sort_keys=True)})
        tmp.replace(path)
        read_merged_metadata(path)  # what `finetuned:` will read back
        log.info("merged alpha %s -> %s (upstream finetuned:%s@%s)", alpha_tag(alpha), path, run_dir,
                 alpha_tag(alpha))
        paths.append(path)
    return paths
