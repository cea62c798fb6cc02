#!/usr/bin/env python3
"""Float64 numpy reference of Muon, Dion2 and Dion, written from their
equations (the Dion2 paper's Algorithm 1 and eqs. 1-2; Dion, arXiv 2504.05295;
NorMuon's neuron-wise normalization), independent of the C++ code.

    /usr/bin/python3 matrix_optimizer_reference.py CASE_DIR

CASE_DIR/case.json names the optimizer, its settings, the matrix shapes, the
seed and the lr multiplier of each step; CASE_DIR/inputs.bin holds float32 W0
(all matrices back to back), then each step's gradients, then (dion) the
initial Q. Writes CASE_DIR/reference.bin: float64 final W, then final momentum.
"""
import json
import math
import os
import sys

import numpy as np

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, state):
        self.state = state & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        # Lemire's multiply-and-reject: uniform in [0, n)
        threshold = ((1 << 64) - n) % n
        while True:
            product = self.next() * n
            if (product & MASK) >= threshold:
                return product >> 64


def derive_seed(parts):
    rng = SplitMix64(0x6C6C6D2E64696F6E)
    for p in parts:
        rng.state ^= p & MASK
        rng.next()
    return rng.next()


JORDAN = (3.4445, -4.7750, 2.0315)
POLAR_EXPRESS = [
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
]


def orthonormalize(x, kind, steps, eps=1e-7):
    """X / (margin ||X||_F + eps), then X <- a X + (b A + c A^2) X with A = X X^T."""
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    margin = 1.01 if kind == "polar_express" else 1.0
    x = x / (margin * np.linalg.norm(x) + eps)
    for t in range(steps):
        if kind == "newton_schulz":
            a, b, c = JORDAN
        else:
            a, b, c = POLAR_EXPRESS[min(t, 7)]
            if t < 7:
                a, b, c = a / 1.01, b / 1.01**3, c / 1.01**5
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def update_scale(rule, fan_out, fan_in):
    if rule == "spectral":
        return math.sqrt(fan_out / fan_in)
    if rule == "rms":
        return 0.2 * math.sqrt(max(fan_out, fan_in))
    return 1.0


def normalize_neurons(o, v, rows, beta2, eps):
    """NorMuon: v_i = b2 v_i + (1-b2) mean_j O_ij^2; O_ij /= sqrt(v_i)+eps; keep ||O||_F."""
    before = np.linalg.norm(o)
    v[rows] = beta2 * v[rows] + (1 - beta2) * np.mean(o * o, axis=1)
    o = o / (np.sqrt(v[rows]) + eps)[:, None]
    after = np.linalg.norm(o)
    return o * (before / after) if after > 0 else o


def main():
    case_dir = sys.argv[1]
    with open(os.path.join(case_dir, "case.json")) as f:
        case = json.load(f)
    cfg, shapes, lr_scales = case["config"], case["shapes"], case["lr_scales"]
    raw = np.fromfile(os.path.join(case_dir, "inputs.bin"), dtype=np.float32).astype(np.float64)
    cursor = 0

    def take(shape):
        nonlocal cursor
        n = shape[0] * shape[1]
        out = raw[cursor:cursor + n].reshape(shape)
        cursor += n
        return out.copy()

    W = [take(s) for s in shapes]
    G = [[take(s) for s in shapes] for _ in lr_scales]
    M = [np.zeros(s) for s in shapes]
    V = [np.zeros(s[0]) for s in shapes]
    algo = case["optimizer"]
    ranks = [max(1, min(min(s), math.ceil(cfg["rank_frac"] * min(s)))) for s in shapes]
    Q = [take((s[1], r)) for s, r in zip(shapes, ranks)] if algo == "dion" else None
    mu, wd, eps, beta2 = cfg["mu"], cfg["weight_decay"], cfg["eps"], cfg["beta2"]
    neuron = cfg["normalize"] == "neuron"

    for t, lr_scale in enumerate(lr_scales):
        lr = cfg["lr"] * lr_scale
        for i, (m_rows, m_cols) in enumerate(shapes):
            g, scale = G[t][i], update_scale(cfg["scale"], m_rows, m_cols)
            if algo == "muon":
                M[i] = mu * M[i] + g
                o = orthonormalize(g + mu * M[i] if cfg["nesterov"] else M[i], cfg["ortho"], cfg["ortho_steps"])
                if neuron:
                    o = normalize_neurons(o, V[i], np.arange(m_rows), beta2, eps)
                W[i] = W[i] * (1 - lr * wd) - lr * scale * o
            elif algo == "dion2":
                dim = cfg["select_dim"]
                rows = dim == "rows" or (dim == "shorter" and m_rows <= m_cols)
                d = m_rows if rows else m_cols
                k = max(1, min(d, math.ceil(cfg["alpha"] * d)))
                M[i] = M[i] + g
                if cfg["select"] == "l1":
                    norms = np.abs(M[i]).sum(axis=1 if rows else 0)
                    chosen = sorted(sorted(range(d), key=lambda j: (-norms[j], j))[:k])
                else:
                    offset = sum(r * c for r, c in shapes[:i])  # the matrix's place in the flat buffer
                    rng = SplitMix64(derive_seed([case["seed"], 0xD1025E1EC7, offset, t + 1]))
                    perm = list(range(d))
                    for j in range(k):
                        swap = j + rng.below(d - j)
                        perm[j], perm[swap] = perm[swap], perm[j]
                    chosen = sorted(perm[:k])
                sub = M[i][chosen, :] if rows else M[i][:, chosen]
                o = orthonormalize(sub, cfg["ortho"], cfg["ortho_steps"])
                if cfg["decay"] == "selective":
                    if rows:
                        M[i][chosen, :] *= mu
                    else:
                        M[i][:, chosen] *= mu
                else:
                    M[i] *= mu
                if neuron:
                    o = normalize_neurons(o, V[i], np.array(chosen) if rows else np.arange(m_rows), beta2, eps)
                W[i] = W[i] * (1 - lr * wd)
                if rows:
                    W[i][chosen, :] -= lr * scale * o
                else:
                    W[i][:, chosen] -= lr * scale * o
            elif algo == "dion":
                M[i] = M[i] + g
                p, _ = np.linalg.qr(M[i] @ Q[i])
                r = M[i].T @ p
                M[i] = M[i] - (1 - mu) * p @ r.T
                Q[i] = r / (np.linalg.norm(r, axis=0, keepdims=True) + eps)
                W[i] = W[i] * (1 - lr * wd) - lr * scale * p @ Q[i].T
            else:
                sys.exit(f"unknown optimizer {algo}")

    out = np.concatenate([w.ravel() for w in W] + [m.ravel() for m in M])
    out.astype(np.float64).tofile(os.path.join(case_dir, "reference.bin"))


if __name__ == "__main__":
    main()
