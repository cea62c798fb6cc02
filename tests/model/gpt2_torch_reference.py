#!/usr/bin/env python3
"""PyTorch float64 reference for the CPU GPT-2: logits, loss and every gradient.

    /usr/bin/python3 gpt2_torch_reference.py CASE.bin REFERENCE.bin

CASE.bin (written by tests/model/test_torch_reference.cpp, little-endian):
    int32[16]  20241123, 1, n_layer, n_head, d_model, seq_len, vocab_size,
               padded_vocab, mlp_hidden, tied, bias, B, T, 0, 0, 0
    float32[P] parameters, in llm.dion's layout (below)
    int32[B*T] inputs, int32[B*T] targets
REFERENCE.bin is CASE.bin followed by
    float64[B*T*V] logits (padding excluded), float64 mean loss, float64[P] gradients.

The model is written here from its definition with torch's own layers, not
from llm.dion's code: pre-LayerNorm GPT-2, tanh GELU, causal attention,
learned positions, vocabulary padded to Vp with the loss over the first V.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def layout(n_layer, d_model, seq_len, padded_vocab, mlp_hidden, tied, bias):
    """(name, shape) in llm.dion's parameter order."""
    C, H = d_model, mlp_hidden
    tensors = [("wte", (padded_vocab, C)), ("wpe", (seq_len, C))]
    for layer in range(n_layer):
        p = f"blocks.{layer}."
        tensors.append((p + "ln1.weight", (C,)))
        if bias:
            tensors.append((p + "ln1.bias", (C,)))
        tensors += [(p + "attn.q.weight", (C, C)), (p + "attn.k.weight", (C, C)), (p + "attn.v.weight", (C, C))]
        if bias:
            tensors += [(p + "attn.q.bias", (C,)), (p + "attn.k.bias", (C,)), (p + "attn.v.bias", (C,))]
        tensors.append((p + "attn.o.weight", (C, C)))
        if bias:
            tensors.append((p + "attn.o.bias", (C,)))
        tensors.append((p + "ln2.weight", (C,)))
        if bias:
            tensors.append((p + "ln2.bias", (C,)))
        tensors.append((p + "mlp.fc.weight", (H, C)))
        if bias:
            tensors.append((p + "mlp.fc.bias", (H,)))
        tensors.append((p + "mlp.proj.weight", (C, H)))
        if bias:
            tensors.append((p + "mlp.proj.bias", (C,)))
    tensors.append(("lnf.weight", (C,)))
    if bias:
        tensors.append(("lnf.bias", (C,)))
    if not tied:
        tensors.append(("lm_head.weight", (padded_vocab, C)))
    return tensors


def main(case_path, out_path):
    raw = open(case_path, "rb").read()
    header = np.frombuffer(raw, dtype="<i4", count=16)
    assert header[0] == 20241123 and header[1] == 1, "not a GPT-2 reference case"
    L, NH, C, maxT, V, Vp, H, tied, bias, B, T = (int(x) for x in header[2:13])
    names_shapes = layout(L, C, maxT, Vp, H, bool(tied), bool(bias))
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

    x = params["wte"][inputs.view(B, T)] + params["wpe"][:T]
    hs = C // NH
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for layer in range(L):
        p = f"blocks.{layer}."
        h = F.layer_norm(x, (C,), get(p + "ln1.weight"), get(p + "ln1.bias"), eps=1e-5)
        q = F.linear(h, get(p + "attn.q.weight"), get(p + "attn.q.bias"))
        k = F.linear(h, get(p + "attn.k.weight"), get(p + "attn.k.bias"))
        v = F.linear(h, get(p + "attn.v.weight"), get(p + "attn.v.bias"))
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        y = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, get(p + "attn.o.weight"), get(p + "attn.o.bias"))
        h = F.layer_norm(x, (C,), get(p + "ln2.weight"), get(p + "ln2.bias"), eps=1e-5)
        h = F.gelu(F.linear(h, get(p + "mlp.fc.weight"), get(p + "mlp.fc.bias")), approximate="tanh")
        x = x + F.linear(h, get(p + "mlp.proj.weight"), get(p + "mlp.proj.bias"))
    x = F.layer_norm(x, (C,), get("lnf.weight"), get("lnf.bias"), eps=1e-5)
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
