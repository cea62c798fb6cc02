#!/usr/bin/env python3
"""PyTorch float64 reference for the CPU GPT family: logits, loss and every gradient.

    /usr/bin/python3 gpt_torch_reference.py CASE.bin REFERENCE.bin

CASE.bin (written by tests/model/test_torch_reference.cpp, little-endian):
    int32[16]  20241123, 2, n_layer, n_head, d_model, seq_len, vocab_size,
               padded_vocab, mlp_hidden, tied, bias, B, T, n_kv_head, flags, rope_theta
               flags: 1 rmsnorm, 2 norm scale, 4 rope, 8 qk-norm, 16 relu^2 MLP, 32 swiglu MLP
    float32[P] parameters, in llm.dion's layout (below)
    int32[B*T] inputs, int32[B*T] targets
REFERENCE.bin is CASE.bin followed by
    float64[B*T*V] logits (padding excluded), float64 mean loss, float64[P] gradients.

The model is written here from its definition with torch's own layers, not
from llm.dion's code: pre-norm GPT (LayerNorm or RMSNorm, eps 1e-5), causal
attention (grouped-query by repeating k and v heads), learned or rotary
positions (pairs (j, j + hs/2) turned by t * theta^(-2j/hs)), qk-norm after the
rotation, tanh-GELU, relu^2 or SwiGLU MLP, vocabulary padded to Vp with the
loss over the first V.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

RMSNORM, NORM_SCALE, ROPE, QK_NORM, RELU2, SWIGLU = 1, 2, 4, 8, 16, 32


def layout(n_layer, n_head, n_kv_head, d_model, seq_len, padded_vocab, mlp_hidden, tied, bias, flags):
    """(name, shape) in llm.dion's parameter order."""
    C, H, KV = d_model, mlp_hidden, n_kv_head * (d_model // n_head)
    tensors = [("wte", (padded_vocab, C))]
    if not flags & ROPE:
        tensors.append(("wpe", (seq_len, C)))

    def norm(name):
        out = []
        if flags & NORM_SCALE:
            out.append((name + ".weight", (C,)))
            if bias and not flags & RMSNORM:
                out.append((name + ".bias", (C,)))
        return out

    def linear(parts, fan_in):
        out = [(name + ".weight", (fan_out, fan_in)) for name, fan_out in parts]
        if bias:
            out += [(name + ".bias", (fan_out,)) for name, fan_out in parts]
        return out

    for layer in range(n_layer):
        p = f"blocks.{layer}."
        tensors += norm(p + "ln1")
        tensors += linear([(p + "attn.q", C), (p + "attn.k", KV), (p + "attn.v", KV)], C)
        tensors += linear([(p + "attn.o", C)], C)
        tensors += norm(p + "ln2")
        if flags & SWIGLU:
            tensors += linear([(p + "mlp.gate", H), (p + "mlp.up", H)], C)
        else:
            tensors += linear([(p + "mlp.fc", H)], C)
        tensors += linear([(p + "mlp.proj", C)], H)
    tensors += norm("lnf")
    if not tied:
        tensors.append(("lm_head.weight", (padded_vocab, C)))
    return tensors


def rms_norm(x, weight, eps=1e-5):
    y = x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps)
    return y * weight if weight is not None else y


def rotate(x, theta):
    """Rotary positions on [B, heads, T, hs]: pair (j, j + hs/2) turns by t * theta^(-2j/hs)."""
    T, hs = x.shape[-2], x.shape[-1]
    j = torch.arange(hs // 2, dtype=torch.float64)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-2.0 * j / hs)
    cos, sin = torch.cos(angle), torch.sin(angle)
    a, b = x[..., : hs // 2], x[..., hs // 2:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def main(case_path, out_path):
    raw = open(case_path, "rb").read()
    header = np.frombuffer(raw, dtype="<i4", count=16)
    assert header[0] == 20241123 and header[1] == 2, "not a GPT reference case (version 2)"
    L, NH, C, maxT, V, Vp, H, tied, bias, B, T, NKV, flags, theta = (int(x) for x in header[2:16])
    names_shapes = layout(L, NH, NKV, C, maxT, Vp, H, bool(tied), bool(bias), flags)
    P = sum(math.prod(shape) for _, shape in names_shapes)
    offset = 64
    flat = np.frombuffer(raw, dtype="<f4", count=P, offset=offset).astype(np.float64)
    offset += 4 * P
    inputs = torch.from_numpy(np.frombuffer(raw, dtype="<i4", count=B * T, offset=offset).astype(np.int64))
    targets = torch.from_numpy(np.frombuffer(raw, dtype="<i4", count=B * T, offset=offset + 4 * B * T).astype(np.int64))
    assert offset + 8 * B * T == len(raw), "case file length does not match its header"

    params, at = {}, 0
    for name, shape in names_shapes:
        n = math.prod(shape)
        params[name] = torch.tensor(flat[at:at + n].reshape(shape), dtype=torch.float64, requires_grad=True)
        at += n
    get = lambda name: params.get(name)

    def norm(x, name):
        if flags & RMSNORM:
            return rms_norm(x, get(name + ".weight"))
        return F.layer_norm(x, (C,), get(name + ".weight"), get(name + ".bias"), eps=1e-5)

    x = params["wte"][inputs.view(B, T)]
    if not flags & ROPE:
        x = x + params["wpe"][:T]
    hs = C // NH
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for layer in range(L):
        p = f"blocks.{layer}."
        h = norm(x, p + "ln1")
        q = F.linear(h, get(p + "attn.q.weight"), get(p + "attn.q.bias")).view(B, T, NH, hs).transpose(1, 2)
        k = F.linear(h, get(p + "attn.k.weight"), get(p + "attn.k.bias")).view(B, T, NKV, hs).transpose(1, 2)
        v = F.linear(h, get(p + "attn.v.weight"), get(p + "attn.v.bias")).view(B, T, NKV, hs).transpose(1, 2)
        if flags & ROPE:
            q, k = rotate(q, theta), rotate(k, theta)
        if flags & QK_NORM:
            q, k = rms_norm(q, None), rms_norm(k, None)
        k, v = k.repeat_interleave(NH // NKV, dim=1), v.repeat_interleave(NH // NKV, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        y = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, get(p + "attn.o.weight"), get(p + "attn.o.bias"))
        h = norm(x, p + "ln2")
        if flags & SWIGLU:
            gate = F.linear(h, get(p + "mlp.gate.weight"), get(p + "mlp.gate.bias"))
            h = F.silu(gate) * F.linear(h, get(p + "mlp.up.weight"), get(p + "mlp.up.bias"))
        elif flags & RELU2:
            h = F.relu(F.linear(h, get(p + "mlp.fc.weight"), get(p + "mlp.fc.bias"))).square()
        else:
            h = F.gelu(F.linear(h, get(p + "mlp.fc.weight"), get(p + "mlp.fc.bias")), approximate="tanh")
        x = x + F.linear(h, get(p + "mlp.proj.weight"), get(p + "mlp.proj.bias"))
    x = norm(x, "lnf")
    head = params["wte"] if tied else params["lm_head.weight"]
    logits = F.linear(x, head)[..., :V].reshape(B * T, V)
    loss = F.cross_entropy(logits, targets)
    loss.backward()

    grads = np.concatenate([params[name].grad.numpy().reshape(-1) for name, _ in names_shapes])
    with open(out_path + ".tmp", "wb") as f:
        f.write(raw)
        f.write(logits.detach().numpy().astype("<f8").tobytes())
        f.write(np.array([loss.item()], dtype="<f8").tobytes())
        f.write(grads.astype("<f8").tobytes())
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
