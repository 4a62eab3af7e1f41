"""The subspace projector: pooled SFM layer features -> speaker / content (/ residual) subspaces.

Input views: one layer of each upstream, or a learned softmax-weighted sum of all its layers
(as s3prl's Featurizer) with one set of weights per subspace; several upstreams are fused
by concatenating their views and a learned linear projection to `fusion_dim`. A shared MLP
(or linear map) maps a view to the full output, and subspace k keeps its own block of it:
with one layer, all views are equal and this is exactly the paper's single MLP whose
768-d output is split into two 384-d halves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from intervox.errors import TrainingError
from intervox.training.config import ModelConfig


@dataclass(frozen=True)
class InputSpec:
    """One upstream's pooled feature shape: [layers + 1, hidden], and its name."""

    name: str
    layers: int  # number of rows of pooled (embedding output + every layer)
    hidden: int

    def to_dict(self) -> dict:
        return {"name": self.name, "layers": self.layers, "hidden": self.hidden}


class LayerView(nn.Module):
    """Return [views, B, hidden] from pooled [B, layers, hidden]: a layer or a weighted sum per view.

    `names` are the subspaces the views feed (one name, "all", when every subspace shares one
    view). In `layer` mode view k is the layer its subspace reads (model.subspace_layers, else
    model.layer); in `weighted_sum` mode each view learns softmax layer weights, restricted to
    model.subspace_layer_ranges when given.
    """

    def __init__(self, spec: InputSpec, cfg: ModelConfig, names: Sequence[str]) -> None:
        super().__init__()
        self.spec = spec
        self.mode = cfg.input
        self.normalize = cfg.normalize_layers
        if self.mode == "layer":
            self.layers = [cfg.subspace_layer(n) for n in names]
            for name, layer in zip(names, self.layers, strict=True):
                if not 0 <= layer < spec.layers:
                    named = name in (cfg.subspace_layers or {})
                    key = f"model.subspace_layers.{name}" if named else "model.layer"
                    raise TrainingError(f"{key}={layer} but upstream {spec.name} has "
                                        f"layers 0..{spec.layers - 1}")
            self.layer = self.layers[0]
        if self.mode == "weighted_sum":
            # zeros = uniform softmax at the start, as s3prl's Featurizer
            self.weights = nn.Parameter(torch.zeros(len(names), spec.layers))
            allowed = torch.ones(len(names), spec.layers, dtype=torch.bool)
            for v, name in enumerate(names):
                lo, hi = (cfg.subspace_layer_ranges or {}).get(name, (0, spec.layers - 1))
                if hi >= spec.layers:
                    raise TrainingError(f"model.subspace_layer_ranges.{name}=[{lo}, {hi}] but upstream "
                                        f"{spec.name} has layers 0..{spec.layers - 1}")
                allowed[v] = (torch.arange(spec.layers) >= lo) & (torch.arange(spec.layers) <= hi)
            self.register_buffer("allowed", allowed, persistent=False)  # rebuilt from the config

    def layer_softmax(self) -> torch.Tensor:
        """Return the [views, layers] softmax weights (zero outside a view's allowed range)."""
        return torch.softmax(self.weights.masked_fill(~self.allowed, float("-inf")), dim=-1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        if pooled.ndim != 3 or pooled.shape[1:] != (self.spec.layers, self.spec.hidden):
            raise TrainingError(f"upstream {self.spec.name}: expected pooled [N, {self.spec.layers}, "
                                f"{self.spec.hidden}], got {list(pooled.shape)}")
        x = pooled
        if self.normalize:
            x = F.layer_norm(x, (x.shape[-1],))
        if self.mode == "layer":
            return x[:, self.layers].transpose(0, 1)
        w = self.layer_softmax().to(x.dtype)  # [V, L]
        return torch.einsum("vl,blh->vbh", w, x)


def build_net(in_dim: int, cfg: ModelConfig, out_dim: int) -> nn.Module:
    """Return the MLP (Linear+ReLU per hidden dim, then Linear) or a single Linear."""
    if cfg.projector == "linear":
        return nn.Linear(in_dim, out_dim)
    layers: list[nn.Module] = []
    dim = in_dim
    for hidden in cfg.hidden_dims:
        layers += [nn.Linear(dim, hidden), nn.ReLU()]
        dim = hidden
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


class SubspaceProjector(nn.Module):
    """Map pooled features of one or more upstreams to named subspace embeddings."""

    def __init__(self, inputs: Sequence[InputSpec], cfg: ModelConfig) -> None:
        super().__init__()
        if not inputs:
            raise TrainingError("the projector needs at least one upstream input")
        self.inputs = list(inputs)
        self.cfg = cfg
        self.subspaces = {"speaker": cfg.speaker_dim, "content": cfg.content_dim}
        if cfg.residual_dim:
            self.subspaces["residual"] = cfg.residual_dim
        per_subspace = cfg.input == "weighted_sum" or cfg.subspace_layers is not None
        self.view_names = list(self.subspaces) if per_subspace else ["all"]
        self.n_views = len(self.view_names)
        self.views = nn.ModuleList(LayerView(spec, cfg, self.view_names) for spec in self.inputs)
        concat = sum(spec.hidden for spec in self.inputs)
        self.fusion = nn.Linear(concat, cfg.fusion_dim) if len(self.inputs) > 1 else None
        in_dim = cfg.fusion_dim if self.fusion is not None else concat
        if cfg.raw_subspaces and self.fusion is not None:
            raise TrainingError("model.raw_subspaces needs one upstream (a fused view is a learned map)")
        for name in cfg.raw_subspaces:
            self.subspaces[name] = in_dim  # the view itself
        # each headed subspace's block of the network's output rows (raw subspaces have none)
        self.head_rows: dict[str, slice] = {}
        rows = 0
        for name, dim in self.subspaces.items():
            if name not in cfg.raw_subspaces:
                self.head_rows[name], rows = slice(rows, rows + dim), rows + dim
        self.net = build_net(in_dim, cfg, rows)
        if cfg.init == "orthogonal":
            self._orthogonal_rows()
        self._scale_initial_rows(cfg.subspace_init_scale or {})
        self.input_pcs = dict(cfg.subspace_input_pcs or {})  # names checked by the config
        if self.input_pcs:
            self._init_input_pcs(in_dim)
        self.frame_layers: torch.Tensor | None = None  # set_frame_layers: the frame loss on a sum

    def _output_layer(self) -> nn.Linear:
        """Return the network's output layer, whose rows `head_rows` splits between the subspaces."""
        return self.net if isinstance(self.net, nn.Linear) else self.net[-1]

    @torch.no_grad()
    def _orthogonal_rows(self) -> None:
        """Make each subspace's block of initial output rows orthonormal times Kaiming uniform's norm."""
        last = self._output_layer()
        for rows in self.head_rows.values():
            block = last.weight[rows]
            norm = block.norm()
            nn.init.orthogonal_(block)
            block.mul_(norm / block.norm())

    @torch.no_grad()
    def _scale_initial_rows(self, scales: dict[str, float]) -> None:
        """Multiply the initial output rows (weights and bias) of each named subspace by its factor."""
        last = self._output_layer()
        for name, factor in scales.items():
            last.weight[self.head_rows[name]].mul_(factor)
            last.bias[self.head_rows[name]].mul_(factor)

    def _init_input_pcs(self, in_dim: int) -> None:
        """Register each named subspace's [n, in_dim] basis and [in_dim] mean (set by fit_input_pcs)."""
        if self.n_views == 1 or self.fusion is not None:
            raise TrainingError("model.subspace_input_pcs needs each subspace its own input (model.input: "
                                "weighted_sum, or subspace_layers) from one upstream")
        for name, n in self.input_pcs.items():
            self.input_pcs[name] = min(n, in_dim)  # all of them: the projection keeps every direction
            self.register_buffer(f"pcs_{name}", torch.zeros(self.input_pcs[name], in_dim))
            self.register_buffer(f"pcs_mean_{name}", torch.zeros(in_dim))
        self.register_buffer("pcs_fitted", torch.tensor(False))

    @torch.no_grad()
    def fit_input_pcs(self, batches: Iterable[Sequence[torch.Tensor]]) -> tuple[int, dict[str, float]]:
        """Fit each named subspace's basis to its inputs over training batches.

        Returns (clips seen, {subspace: share of the input variance its basis keeps}).

        The inputs' mean and covariance are summed batch by batch (memory: one batch and a D x D
        matrix per subspace), then the basis is the covariance's top eigenvectors.
        """
        names = [(v, name) for v, name in enumerate(self.view_names) if name in self.input_pcs]
        count, sums, outer = 0, {}, {}
        for pooled in batches:
            h = self.views[0](pooled[0]).double()  # [V, N, D]
            count += h.shape[1]
            for v, name in names:
                sums[name] = sums.get(name, 0) + h[v].sum(0)
                outer[name] = outer.get(name, 0) + h[v].T @ h[v]
        if count < 2:
            raise TrainingError(f"model.subspace_input_pcs: {count} training clip(s) cannot give directions")
        kept = {}
        for _, name in names:
            mean = sums[name] / count
            values, vectors = torch.linalg.eigh(outer[name] / count - torch.outer(mean, mean))
            n = self.input_pcs[name]
            getattr(self, f"pcs_{name}").copy_(vectors[:, -n:].T.flip(0).float())  # largest first
            getattr(self, f"pcs_mean_{name}").copy_(mean.float())
            values = values.clamp(min=0)
            kept[name] = float(values[-n:].sum() / values.sum())
        self.pcs_fitted.fill_(True)
        return count, kept

    def _project_inputs(self, h: torch.Tensor) -> torch.Tensor:
        """Return the views [V, B, D] with each named subspace's input kept to its principal directions."""
        if not bool(self.pcs_fitted):
            raise TrainingError("model.subspace_input_pcs: the input bases are not fitted (fit_input_pcs)")
        return torch.stack([self._project_input(name, h[v]) if name in self.input_pcs else h[v]
                            for v, name in enumerate(self.view_names)])

    def _project_input(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Return x [..., D] kept to subspace `name`'s principal directions (about their mean)."""
        basis, mean = getattr(self, f"pcs_{name}"), getattr(self, f"pcs_mean_{name}")
        return mean + ((x - mean) @ basis.T) @ basis

    def forward(self, pooled: Sequence[torch.Tensor],
                frames: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Return {subspace: [B, dim]}; with `frames` [M, hidden] also "frame_content" [M, dc].

        Frames (of the content subspace's layer; the loop picks them) go through the same
        layer norm and network as the content view (layer input, one upstream only), so the
        frame loss shapes the clip-level content subspace.
        """
        if len(pooled) != len(self.views):
            raise TrainingError(f"expected pooled features of {len(self.views)} upstream(s), "
                                f"got {len(pooled)}")
        # [V, B, concat]
        h = torch.cat([view(x) for view, x in zip(self.views, pooled, strict=True)], dim=-1)
        if self.fusion is not None:
            h = self.fusion(h)
        if self.input_pcs:
            h = self._project_inputs(h)
        out = self.net(h)  # [V, B, head rows]
        result = {}
        for k, name in enumerate(self.subspaces):
            view = k if self.n_views > 1 else 0
            result[name] = out[view, :, self.head_rows[name]] if name in self.head_rows else h[view]
        if frames is not None:
            x = self._content_view_of_frames(frames)
            if "content" in self.input_pcs:  # the same input the clip-level content view gets
                x = self._project_input("content", x)
            if "content" in self.head_rows:
                x = self.net(x)[:, self.head_rows["content"]]
            result["frame_content"] = x
        return result

    def set_frame_layers(self, layers: Sequence[int]) -> None:
        """Say which pooled row each slot of the frames holds (frame loss on a weighted-sum view)."""
        self.frame_layers = torch.as_tensor(list(layers), dtype=torch.long)

    def _content_view_of_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Return frames [M, hidden] as the content view sees clips: layer-normed when it is, and for a
        weighted sum frames [M, slots, hidden] summed with the content view's own layer weights."""
        if self.fusion is not None:
            raise TrainingError("the frame-level content loss needs one upstream")
        x = F.layer_norm(frames, (frames.shape[-1],)) if self.views[0].normalize else frames
        if self.cfg.input == "layer":
            return x
        layers = self.frame_layers
        if layers is None or x.ndim != 3 or x.shape[1] != len(layers):
            raise TrainingError("frames for a weighted-sum content view must be [M, slots, hidden] with the "
                                "layer of each slot given (set_frame_layers)")
        weights = self.views[0].layer_softmax()[self.view_names.index("content")]
        return torch.einsum("s,msh->mh", weights[layers.to(weights.device)].to(x.dtype), x)

    def layer_weights(self) -> dict[str, dict[str, list[float]]]:
        """Return {upstream: {subspace: softmax layer weights}} (empty for layer input)."""
        if self.cfg.input != "weighted_sum":
            return {}
        return {view.spec.name: {name: w.tolist() for name, w in zip(self.view_names,
                                                                        view.layer_softmax().detach().float(),
                                                                        strict=True)}
                for view in self.views}

    def subspace_inputs(self) -> dict[str, str]:
        """Return {subspace: the input it reads}, e.g. "layer 6" or "weighted sum of layers 0-6"."""
        out = {}
        for name in self.subspaces:
            if self.cfg.input == "layer":
                out[name] = f"layer {self.cfg.subspace_layer(name)}"
            else:
                top = self.inputs[0].layers - 1
                lo, hi = (self.cfg.subspace_layer_ranges or {}).get(name, (0, top))
                out[name] = f"weighted sum of layers {lo}-{hi}"
            if name in self.input_pcs:
                out[name] += f", its top {self.input_pcs[name]} training PCs"
            if name in self.cfg.raw_subspaces:
                out[name] += ", no head"
        return out
