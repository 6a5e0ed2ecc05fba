"""A small scoring network in numpy: standardised features, one tanh hidden layer (or none:
a linear model), one output.  Trained with Adam on a listwise softmax loss (which of a
question's candidates is right) or a weighted logistic loss (is the question answerable);
inference is a few matrix products.  Deterministic for a given seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Net:
    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray  # features x hidden (hidden 0: unused)
    b1: np.ndarray
    w2: np.ndarray  # hidden (or features) x 1
    b2: np.ndarray

    def score(self, x: np.ndarray) -> np.ndarray:
        """One score per row of ``x`` (a logit)."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        h = np.tanh(z @ self.w1 + self.b1) if self.w1.size else z
        out: np.ndarray = (h @ self.w2 + self.b2)[:, 0]
        return out

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        names = ("mean", "scale", "w1", "b1", "w2", "b2")
        return {f"{prefix}.{n}": getattr(self, n) for n in names}

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray], prefix: str) -> Net:
        names = ("mean", "scale", "w1", "b1", "w2", "b2")
        return cls(*(np.asarray(data[f"{prefix}.{n}"], dtype=np.float64) for n in names))


def _group_starts(groups: np.ndarray) -> np.ndarray:
    """Start index of each run of equal group ids (groups must be contiguous)."""
    change = np.flatnonzero(np.diff(groups)) + 1
    return np.concatenate([[0], change]).astype(np.int64)


def fit(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    hidden: int = 16,
    epochs: int = 400,
    lr: float = 0.01,
    l2: float = 1e-4,
    seed: int = 0,
) -> Net:
    """Fit a :class:`Net`.  With ``groups`` (contiguous ids): listwise softmax loss over each
    group's rows, groups without a positive ignored; else weighted logistic loss."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    n, d = z.shape
    params = {
        "w1": rng.normal(0, 1 / np.sqrt(d), (d, hidden)) if hidden else np.zeros((0, 0)),
        "b1": np.zeros(hidden),
        "w2": rng.normal(0, 1 / np.sqrt(max(hidden, d)), (hidden or d, 1)),
        "b2": np.zeros(1),
    }
    if groups is not None:
        g = np.asarray(groups)
        starts = _group_starts(g)
        index = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))
        has_pos = np.add.reduceat(y, starts) > 0
        active = has_pos[index]
        count = max(int(has_pos.sum()), 1)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    for step in range(1, epochs + 1):
        h = np.tanh(z @ params["w1"] + params["b1"]) if hidden else z
        s = (h @ params["w2"] + params["b2"])[:, 0]
        if groups is not None:
            top = np.maximum.reduceat(s, starts)
            e = np.exp(s - top[index])
            total = np.add.reduceat(e, starts)
            pos = np.add.reduceat(e * y, starts)
            ds = e / total[index] - np.where(y > 0, e / np.maximum(pos[index], 1e-300), 0.0)
            ds = np.where(active, ds, 0.0) / count
        else:
            p = 1.0 / (1.0 + np.exp(-s))
            ds = (p - y) * w / w.sum()
        grads = {"w2": h.T @ ds[:, None], "b2": np.array([ds.sum()])}
        if hidden:
            dh = ds[:, None] @ params["w2"].T * (1 - h**2)
            grads["w1"] = z.T @ dh
            grads["b1"] = dh.sum(axis=0)
            grads["w1"] += l2 * params["w1"]
        grads["w2"] = grads["w2"] + l2 * params["w2"]
        for k, grad in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * grad
            v[k] = 0.999 * v[k] + 0.001 * grad**2
            mhat = m[k] / (1 - 0.9**step)
            vhat = v[k] / (1 - 0.999**step)
            params[k] = params[k] - lr * mhat / (np.sqrt(vhat) + 1e-8)
    return Net(mean, scale, params["w1"], params["b1"], params["w2"], params["b2"])
