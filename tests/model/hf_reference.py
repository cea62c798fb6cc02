#!/usr/bin/env python3
"""An independent reader of an exported Hugging Face folder: the forward pass of
GPT2LMHeadModel or LlamaForCausalLM written from transformers' documented
layouts (modeling_gpt2.py, modeling_llama.py), in float64 torch, over the
folder's config.json and model.safetensors (parsed here from the format's
specification: an 8-byte header length, a JSON header, raw little-endian data).
It shares no code with llm.dion.

    /usr/bin/python3 hf_reference.py HF_DIR TOKENS.int32 LOGITS.f32 [TOLERANCE]

Exits 0 when the logits it computes for the tokens (one sequence) match
LOGITS ([T, vocab_size] float32) within TOLERANCE (max abs difference).
"""
import json
import math
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        begin, end = info["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
        tensors[name] = torch.from_numpy(values.astype(np.float64))
    return tensors


def attention(q, k, v):
    """q [NH, T, hs], k and v [NH, T, hs]: causal softmax(q k^T / sqrt(hs)) v."""
    T, hs = q.shape[1], q.shape[2]
    scores = q @ k.transpose(1, 2) / math.sqrt(hs)
    scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def gpt2_logits(cfg, w, ids):
    C, NH, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    T = len(ids)
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], eps)  # noqa: E731
    conv1d = lambda x, p: x @ w[p + ".weight"] + w[p + ".bias"]  # Conv1D: weight [in, out]  # noqa: E731
    gelu_new = lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))  # noqa: E731
    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][:T]
    for layer in range(cfg["n_layer"]):
        p = f"transformer.h.{layer}."
        q, k, v = conv1d(ln(x, p + "ln_1"), p + "attn.c_attn").split(C, dim=1)
        heads = lambda t: t.view(T, NH, C // NH).transpose(0, 1)  # noqa: E731
        y = attention(heads(q), heads(k), heads(v)).transpose(0, 1).reshape(T, C)
        x = x + conv1d(y, p + "attn.c_proj")
        x = x + conv1d(gelu_new(conv1d(ln(x, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
    x = ln(x, "transformer.ln_f")
    head = w["transformer.wte.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def llama_logits(cfg, w, ids):
    C, NH, NKV, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["rms_norm_eps"]
    hs = cfg.get("head_dim", C // NH)
    T = len(ids)

    def rms(x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w[name]

    def linear(x, name):
        out = x @ w[name + ".weight"].T
        return out + w[name + ".bias"] if name + ".bias" in w else out

    # rotate_half RoPE: inv_freq = theta^(-2i/hs), emb = [freqs, freqs].
    inv_freq = 1.0 / cfg["rope_theta"] ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()
    rotate_half = lambda t: torch.cat([-t[..., hs // 2:], t[..., :hs // 2]], -1)  # noqa: E731
    rope = lambda t: t * cos + rotate_half(t) * sin  # noqa: E731
    x = w["model.embed_tokens.weight"][ids]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms(x, p + "input_layernorm.weight")
        q = rope(linear(h, p + "self_attn.q_proj").view(T, NH, hs).transpose(0, 1))
        k = rope(linear(h, p + "self_attn.k_proj").view(T, NKV, hs).transpose(0, 1))
        v = linear(h, p + "self_attn.v_proj").view(T, NKV, hs).transpose(0, 1)
        k, v = k.repeat_interleave(NH // NKV, 0), v.repeat_interleave(NH // NKV, 0)  # repeat_kv
        x = x + linear(attention(q, k, v).transpose(0, 1).reshape(T, NH * hs), p + "self_attn.o_proj")
        h = rms(x, p + "post_attention_layernorm.weight")
        x = x + linear(torch.nn.functional.silu(linear(h, p + "mlp.gate_proj")) * linear(h, p + "mlp.up_proj"),
                       p + "mlp.down_proj")
    return rms(x, "model.norm.weight") @ w["lm_head.weight"].T


def main():
    folder, tokens_path, logits_path = sys.argv[1:4]
    tolerance = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-4
    cfg = json.load(open(f"{folder}/config.json"))
    w = read_safetensors(f"{folder}/model.safetensors")
    ids = torch.from_numpy(np.fromfile(tokens_path, dtype="<i4").astype(np.int64))
    arch = cfg["architectures"]
    if arch == ["GPT2LMHeadModel"]:
        logits = gpt2_logits(cfg, w, ids)
    elif arch == ["LlamaForCausalLM"]:
        logits = llama_logits(cfg, w, ids)
    else:
        sys.exit(f"no Hugging Face architecture in config.json: {arch}")
    ours = torch.from_numpy(np.fromfile(logits_path, dtype="<f4").astype(np.float64)).view(len(ids), -1)
    assert ours.shape == logits.shape, (ours.shape, logits.shape)
    diff = (ours - logits).abs().max().item()
    print(f"{arch[0]}: max |logit difference| {diff:.3g} over {tuple(logits.shape)}")
    sys.exit(0 if diff <= tolerance else 1)


if __name__ == "__main__":
    main()
