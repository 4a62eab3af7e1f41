"""Loss terms: supervised contrastive (per subspace), orthogonality, SIGReg, frame content.

All take float tensors and return a scalar tensor (plus counts where useful); they are
written from the formulas so that tests can check them against plain-loop references.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SupConResult:
    """The loss and how many anchors had at least one positive."""

    loss: torch.Tensor
    anchors_with_positives: int
    anchors: int


def labels_to_ids(labels: list[str] | tuple[str, ...]) -> torch.Tensor:
    """Return int64 ids such that equal labels get equal ids (first-seen order)."""
    vocab: dict[str, int] = {}
    return torch.tensor([vocab.setdefault(lab, len(vocab)) for lab in labels], dtype=torch.long)


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1,
                margin: float = 0.0) -> SupConResult:
    """Return the multi-positive supervised contrastive loss (Khosla et al. 2020, 'L_out').

    z [B, D] is L2-normalised; logits z z^T / tau with self pairs removed from the softmax;
    positives are other rows with the same label; the target is uniform over positives;
    the loss is the cross-entropy averaged over anchors with at least one positive.
    An additive margin m subtracts m / tau from positive logits.
    """
    z = F.normalize(z.float(), dim=1)
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    positives = (labels[:, None] == labels[None, :]) & ~eye
    logits = z @ z.T / temperature
    if margin:
        logits = logits - (margin / temperature) * positives.float()
    logits = logits.masked_fill(eye, float("-inf"))
    log_prob = F.log_softmax(logits, dim=1).masked_fill(eye, 0.0)  # avoid 0 * -inf
    n_pos = positives.sum(1)
    valid = n_pos > 0
    count = int(valid.sum())
    if count == 0:
        return SupConResult(z.sum() * 0.0, 0, n)
    per_anchor = -(positives.float() * log_prob).sum(1)[valid] / n_pos[valid].float()
    return SupConResult(per_anchor.mean(), count, n)


def orthogonality_loss(a: torch.Tensor, b: torch.Tensor, variant: str = "cross_covariance") -> torch.Tensor:
    """Return the orthogonality penalty between two subspaces' embeddings a [B, Da], b [B, Db].

    Rows are L2-normalised first. 'cross_covariance': ||Za^T Zb / B||_F^2, the squared
    Frobenius norm of the batch-averaged cross-correlation; it does not depend on the batch
    size (a batch and the same batch repeated give equal values) and lies in [0, 1].
    'cross_covariance_ref': the reference method's mean((Za^T Zb)^2), whose scale grows with
    B^2 (B^2 / (Da Db) times the default). 'pairwise': mean((Za Zb^T)^2), equal dims only.
    """
    za, zb = F.normalize(a.float(), dim=1), F.normalize(b.float(), dim=1)
    if variant == "cross_covariance":
        return (za.T @ zb / za.shape[0]).square().sum()
    if variant == "cross_covariance_ref":
        return (za.T @ zb).square().mean()
    if variant == "pairwise":
        return (za @ zb.T).square().mean()
    raise ValueError(f"unknown orthogonality variant {variant!r}")


def subspace_orthogonality(parts: list[torch.Tensor], variant: str) -> torch.Tensor:
    """Return the orthogonality loss summed over every pair of subspaces."""
    return sum(orthogonality_loss(a, b, variant) for a, b in itertools.combinations(parts, 2))


def cohort_decorrelation(speaker: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Return ||S^T C / N||_F^2 of the centred L2-normalised rows, the speaker side detached.

    On unlabelled real clips: zero when no direction of the content subspace is linearly
    predictable from the speaker subspace (what the cohort backend's regression removes after
    training). The speaker subspace is held fixed, so only the content map moves.
    """
    s = F.normalize(speaker.detach().float(), dim=1)
    c = F.normalize(content.float(), dim=1)
    s, c = s - s.mean(dim=0), c - c.mean(dim=0)
    return (s.T @ c / s.shape[0]).square().sum()


def leakage_loss(z: torch.Tensor, held: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Return how much more alike the clips sharing the `other` factor are in subspace z.

    Among pairs that differ in the factor z should hold (`held`), compare the mean cosine of
    pairs that share the other factor with that of pairs that share neither: in a clean
    content subspace a speaker's two sentences are no closer than two strangers' sentences
    (the content subspace's speaker EER, measured on real speech, is this gap's ranking form).
    Returns the absolute gap (its gradient does not vanish as the gap closes); zero when either
    pair set is empty in the batch.
    """
    z = F.normalize(z.float(), dim=1)
    sim = z @ z.T
    differ = held[:, None] != held[None, :]
    share = other[:, None] == other[None, :]
    a, b = differ & share, differ & ~share
    if not a.any() or not b.any():
        return sim.sum() * 0.0
    return (sim[a].mean() - sim[b].mean()).abs()


def random_directions(dim: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """Return `count` random unit vectors in R^dim as the columns of a [dim, count] matrix."""
    a = torch.randn(dim, count, generator=generator, dtype=torch.float32)
    return a / a.norm(dim=0, keepdim=True)


def epps_pulley(x: torch.Tensor, knots: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """Return the Epps-Pulley statistic of each column of x [N, M] against N(0, 1).

    integral over t in [0, t_max] of w(t) |phi_emp(t) - exp(-t^2/2)|^2, w(t) = exp(-t^2/2),
    by the trapezoid rule on `knots` equally spaced points (LeJEPA, Balestriero & LeCun 2025).
    """
    t = torch.linspace(0.0, t_max, knots, dtype=torch.float32, device=x.device)
    gauss = torch.exp(-0.5 * t.square())
    xt = x.float().unsqueeze(-1) * t  # [N, M, K]
    # |phi_emp - phi|^2 with phi real: (mean cos - phi)^2 + (mean sin)^2
    err = (torch.cos(xt).mean(0) - gauss).square() + torch.sin(xt).mean(0).square()
    return torch.trapezoid(err * gauss, t, dim=-1)  # [M]


def sigreg_loss(z: torch.Tensor, generator: torch.Generator, directions: int = 256, knots: int = 17,
                t_max: float = 3.0, scale_by_n: bool = False) -> torch.Tensor:
    """Return SIGReg: Epps-Pulley of z [N, D] projected on random unit directions, averaged.

    With `scale_by_n` the statistic is multiplied by N as in LeJEPA's reference code.
    """
    a = random_directions(z.shape[1], directions, generator).to(z.device)
    stat = epps_pulley(z.float() @ a, knots, t_max).mean()
    return stat * z.shape[0] if scale_by_n else stat


def frame_content_loss(source: torch.Tensor, copy: torch.Tensor, temperature: float = 0.1) -> SupConResult:
    """Return the frame-level content loss for timing-preserving interventions.

    source, copy [P, F, D]: frame f of pair p in the source clip and in its speaker-intervened
    copy say the same thing at the same time, so they are each other's only positive; every
    other sampled frame is a negative.
    """
    p, f, d = source.shape
    ids = torch.arange(p * f, device=source.device)
    z = torch.cat([source.reshape(p * f, d), copy.reshape(p * f, d)])
    return supcon_loss(z, torch.cat([ids, ids]), temperature)
