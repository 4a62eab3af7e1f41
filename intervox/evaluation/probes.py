"""Linear probes: a seeded softmax-regression classifier on frozen embeddings.

The probe is one `torch.nn.Linear` layer trained with Adam (lr 1e-3, 30 epochs,
minibatches), on features standardised with the training set's mean and std. Weights
start at zero (the problem is convex, so nothing is lost) and the minibatch order comes
from a `torch.Generator` seeded by the caller: the same inputs and seed give the same
accuracy, and no global RNG is touched.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from intervox.errors import IntervoxError


@dataclass(frozen=True)
class ProbeConfig:
    """Training settings of a linear probe."""

    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0


@dataclass(frozen=True)
class ProbeResult:
    """Accuracy of a probe on its test set, with the confusion matrix (rows = true, cols = predicted)."""

    accuracy: float
    classes: list[str]
    confusion: np.ndarray
    n_train: int
    n_test: int
    chance: float  # accuracy of always predicting the most frequent training class
    extra: dict = field(default_factory=dict)

    def to_dict(self, with_confusion: bool = True) -> dict:
        extra = {k: v for k, v in self.extra.items() if k != "correct"}  # per-clip flags stay in memory
        d = {"accuracy": self.accuracy, "chance": self.chance, "n_train": self.n_train,
             "n_test": self.n_test, "n_classes": len(self.classes), **extra}
        if with_confusion:
            d["classes"] = list(self.classes)
            d["confusion"] = self.confusion.astype(int).tolist()
        return d


def train_probe(x_train: np.ndarray, y_train: Sequence[str], x_test: np.ndarray, y_test: Sequence[str],
                cfg: ProbeConfig = ProbeConfig(), classes: Sequence[str] | None = None) -> ProbeResult:
    """Train a linear probe on (x_train, y_train) and return its accuracy on (x_test, y_test).

    `classes` fixes the label order of the confusion matrix (e.g. the 12 Speech Commands
    classes); by default it is the sorted union of the labels. A test label never seen in
    training counts as an error.
    """
    x_train = np.asarray(x_train, dtype=np.float32)
    x_test = np.asarray(x_test, dtype=np.float32)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise IntervoxError(f"probe: expected 2-D features of equal width, "
                            f"got {x_train.shape} and {x_test.shape}")
    if len(y_train) != len(x_train) or len(y_test) != len(x_test):
        raise IntervoxError("probe: labels and features differ in length")
    if len(x_train) == 0 or len(x_test) == 0:
        raise IntervoxError(f"probe: empty train ({len(x_train)}) or test ({len(x_test)}) set")
    classes = list(classes) if classes is not None else sorted(set(y_train) | set(y_test))
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = sorted((set(y_train) | set(y_test)) - set(lookup))
    if unknown:
        raise IntervoxError(f"probe: label {unknown[0]!r} is not one of the classes {classes[:12]}")
    yi_train = np.array([lookup[y] for y in y_train], dtype=np.int64)
    yi_test = np.array([lookup[y] for y in y_test], dtype=np.int64)

    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std < 1e-6, 1.0, std)  # constant features stay constant (zero) after scaling
    xt = torch.from_numpy((x_train - mean) / std)
    xv = torch.from_numpy((x_test - mean) / std)
    yt = torch.from_numpy(yi_train)

    model = torch.nn.Linear(xt.shape[1], len(classes))
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    with torch.no_grad():
        pred = model(xv).argmax(dim=1).numpy()
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (yi_test, pred), 1)
    majority = np.bincount(yi_train, minlength=len(classes)).argmax()
    return ProbeResult(accuracy=float(np.mean(pred == yi_test)), classes=classes, confusion=confusion,
                       n_train=len(xt), n_test=len(xv), chance=float(np.mean(yi_test == majority)),
                       extra={"correct": pred == yi_test})


def split_by_group(groups: Sequence[str], test_fraction: float, seed: int, salt: str = "") -> np.ndarray:
    """Return a boolean test mask that puts whole groups (e.g. speakers) on one side, chosen by seed.

    At least one group goes to each side when there are two or more groups.
    """
    uniq = sorted(set(groups))
    if len(uniq) < 2:
        where = f" ({salt})" if salt else ""
        raise IntervoxError(f"cannot split {len(uniq)} group(s) into probe train and test{where}")
    rng = np.random.default_rng([seed, zlib.crc32(salt.encode())])
    n_test = min(len(uniq) - 1, max(1, int(round(test_fraction * len(uniq)))))
    test = {uniq[i] for i in rng.permutation(len(uniq))[:n_test]}
    return np.array([g in test for g in groups], dtype=bool)


def group_folds(groups: Sequence[str], folds: int, seed: int, salt: str = "") -> np.ndarray:
    """Return each item's fold in 0..K-1 (K = min(folds, groups)), whole groups per fold, chosen by seed.

    Groups are dealt round robin in a seeded order, so folds differ in size by at most one group.
    """
    uniq = sorted(set(groups))
    if len(uniq) < 2:
        where = f" ({salt})" if salt else ""
        raise IntervoxError(f"cannot cross-validate over {len(uniq)} group(s){where}: need 2 or more")
    rng = np.random.default_rng([seed, zlib.crc32(salt.encode())])
    k = min(max(2, int(folds)), len(uniq))
    of = {uniq[g]: i % k for i, g in enumerate(rng.permutation(len(uniq)))}
    return np.array([of[g] for g in groups], dtype=np.int64)
