#!/usr/bin/env python3
"""Golden fixtures for every architecture Rotor runs, from llama.cpp on tiny random-weight models.

For each architecture (llama, qwen2, qwen3, gemma3, phi3) this writes a tiny GGUF (a few layers,
hidden 64, F32 weights, a 320-token SentencePiece-style vocab that llama.cpp accepts), runs it in
llama.cpp through llama-cpp-python on fixed token ids, and records in
crates/model/tests/fixtures/arch_<arch>.json:

  spec      the model: metadata (typed) and every tensor's name, dims and generator parameters
  prompt    the token ids fed in one batch
  logits    llama.cpp's full logits at a few prompt positions
  greedy    the greedy continuation (one token per step) and, per step, the gap between the best
            and second-best logit
  decode_logits  llama.cpp's logits after the last greedy token was fed
  weights_fnv1a64  FNV-1a 64 of all tensors' F32 bytes in spec order (the Rust side checks that
            it rebuilt the same weights)

Weights are not stored: both this script and the Rust test (crates/model/tests/arch_golden.rs)
generate them from the spec with the same integer generator, so each fixture is ~20 KB and the
GGUF files are rebuilt bit for bit on either side. Tensor values:
  z = splitmix64(fnv1a64(name) ^ SEED, i)      (i = element index, see `uniform` below)
  u = (z >> 40) * 2^-24                        (exact in f32)
  value = offset + scale * (2u - 1)            (f32 arithmetic, in this order)

llama.cpp runs with F32 KV and flash attention off, so it computes in f32 like our forward.

Usage (from the repo root, in the reference environment of gen_fixtures.py plus `gguf`):
  /tmp/refenv/bin/pip install gguf
  /tmp/refenv/bin/python scripts/golden/tiny_models.py [--keep DIR]   # ~3 s
"""
import argparse
import json
import os
import sys
import tempfile

import gguf
import llama_cpp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "crates", "model", "tests", "fixtures")
SEED = 0x5EED_2025
VOCAB = 320
CTX = 64
GREEDY = 8
# Token ids fed as the prompt: 20 distinct-ish ids from a fixed LCG (never the control tokens 0-2).
PROMPT = [3 + (37 * i * i + 11 * i + 5) % (VOCAB - 3) for i in range(20)]
# Prompt positions whose full logits are recorded (the last is the prompt's end).
LOGIT_POSITIONS = [0, 3, 9, len(PROMPT) - 1]

MASK64 = (1 << 64) - 1


def fnv1a64(text: str) -> int:
    return fnv1a64_bytes(text.encode("utf-8"))


def uniform(seed: int, n: int) -> np.ndarray:
    """n values in [0, 1), exactly representable in f32: splitmix64 of seed + (i + 1) * golden."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)


def tensor_values(name: str, n: int, offset: float, scale: float) -> np.ndarray:
    u = uniform(fnv1a64(name) ^ SEED, n)
    t = np.float32(2.0) * u - np.float32(1.0)
    return np.float32(offset) + np.float32(scale) * t


class Spec:
    """One tiny model: typed metadata and tensors (GGUF dims order: innermost first)."""

    def __init__(self, arch: str):
        self.arch = arch
        self.metadata = []  # [key, type, value]
        self.tensors = []  # {name, dims, offset, scale}

    def kv(self, key: str, typ: str, value):
        self.metadata.append([f"{self.arch}.{key}", typ, value])

    def t(self, name: str, dims, offset=0.0, scale=None):
        if scale is None:  # unit-variance outputs for unit-variance inputs: sqrt(3 / fan_in)
            scale = round(float(np.sqrt(3.0 / dims[0])), 4)
        self.tensors.append({"name": name, "dims": list(dims), "offset": offset, "scale": scale})

    def norm(self, name: str, n: int):
        self.t(name, [n], offset=1.0, scale=0.25)

    def to_json(self):
        return {"architecture": self.arch, "metadata": self.metadata, "tensors": self.tensors}


def base_spec(arch, *, d=64, layers=2, heads=4, kv_heads=2, head_dim=None, ffn=128,
              rope_base=10000.0, tied=False):
    s = Spec(arch)
    s.kv("context_length", "u32", CTX)
    s.kv("embedding_length", "u32", d)
    s.kv("block_count", "u32", layers)
    s.kv("feed_forward_length", "u32", ffn)
    s.kv("attention.head_count", "u32", heads)
    s.kv("attention.head_count_kv", "u32", kv_heads)
    s.kv("attention.layer_norm_rms_epsilon", "f32", 1e-6)
    s.kv("rope.freq_base", "f32", rope_base)
    hd = head_dim or d // heads
    if head_dim is not None:
        s.kv("attention.key_length", "u32", hd)
        s.kv("attention.value_length", "u32", hd)
    s.t("token_embd.weight", [d, VOCAB], scale=1.0)
    s.dims = dict(d=d, layers=layers, q=heads * hd, kv=kv_heads * hd, hd=hd, ffn=ffn)
    s.tied = tied
    return s


def attention(s, i, *, fused_qkv=False, bias=False, qk_norm=False):
    d, q, kv, hd = s.dims["d"], s.dims["q"], s.dims["kv"], s.dims["hd"]
    s.norm(f"blk.{i}.attn_norm.weight", d)
    if fused_qkv:
        s.t(f"blk.{i}.attn_qkv.weight", [d, q + 2 * kv])
    else:
        s.t(f"blk.{i}.attn_q.weight", [d, q])
        s.t(f"blk.{i}.attn_k.weight", [d, kv])
        s.t(f"blk.{i}.attn_v.weight", [d, kv])
    if bias:
        for part, n in (("q", q), ("k", kv), ("v", kv)):
            s.t(f"blk.{i}.attn_{part}.bias", [n], scale=0.1)
    if qk_norm:
        s.norm(f"blk.{i}.attn_q_norm.weight", hd)
        s.norm(f"blk.{i}.attn_k_norm.weight", hd)
    s.t(f"blk.{i}.attn_output.weight", [q, d])


def ffn(s, i, *, fused_up=False):
    d, f = s.dims["d"], s.dims["ffn"]
    s.norm(f"blk.{i}.ffn_norm.weight", d)
    if fused_up:
        s.t(f"blk.{i}.ffn_up.weight", [d, 2 * f])
    else:
        s.t(f"blk.{i}.ffn_gate.weight", [d, f])
        s.t(f"blk.{i}.ffn_up.weight", [d, f])
    s.t(f"blk.{i}.ffn_down.weight", [f, d])


def output(s):
    s.norm("output_norm.weight", s.dims["d"])
    if not s.tied:
        s.t("output.weight", [s.dims["d"], VOCAB])


def llama():
    s = base_spec("llama", layers=2, heads=4, kv_heads=2)
    s.kv("rope.dimension_count", "u32", 16)
    for i in range(2):
        attention(s, i)
        ffn(s, i)
    output(s)
    return s


def qwen2():
    s = base_spec("qwen2", layers=2, heads=4, kv_heads=2, rope_base=1e6, tied=True)
    s.tensors[0]["scale"] = 0.25  # tied: a large embedding would make every step echo its input
    for i in range(2):
        attention(s, i, bias=True)
        ffn(s, i)
    output(s)
    return s


def qwen3():
    # key_length 32 with 4 heads: the query width (128) differs from the embedding (64).
    s = base_spec("qwen3", layers=2, heads=4, kv_heads=2, head_dim=32, rope_base=1e6)
    for i in range(2):
        attention(s, i, qk_norm=True)
        ffn(s, i)
    output(s)
    return s


def gemma3():
    # Six layers: with the default pattern, layers 0-4 attend through a 4-token window with RoPE
    # base 10000, layer 5 globally with base 1e6 and linear RoPE scaling 8. The 20-token prompt and
    # the greedy decode run far past the window.
    s = base_spec("gemma3", layers=6, heads=4, kv_heads=1, head_dim=32, rope_base=1e6, tied=True)
    s.kv("attention.sliding_window", "u32", 4)
    s.kv("rope.scaling.type", "str", "linear")
    s.kv("rope.scaling.factor", "f32", 8.0)
    s.kv("final_logit_softcapping", "f32", 30.0)
    s.tensors[0]["scale"] = 0.125  # the embedding is multiplied by sqrt(64) = 8
    d = s.dims["d"]
    for i in range(6):
        attention(s, i, qk_norm=True)
        s.norm(f"blk.{i}.post_attention_norm.weight", d)
        ffn(s, i)
        s.norm(f"blk.{i}.post_ffw_norm.weight", d)
    output(s)
    return s


def phi3():
    # Fused QKV and gate/up; RoPE on the first 8 of 16 head dimensions.
    s = base_spec("phi3", layers=2, heads=4, kv_heads=4)
    s.kv("rope.dimension_count", "u32", 8)
    for i in range(2):
        attention(s, i, fused_qkv=True)
        ffn(s, i, fused_up=True)
    output(s)
    return s


ARCHS = [llama, qwen2, qwen3, gemma3, phi3]


def weights_hash(spec: Spec) -> str:
    data = b"".join(
        tensor_values(t["name"], int(np.prod(t["dims"])), t["offset"], t["scale"]).astype("<f4").tobytes()
        for t in spec.tensors)
    return f"{fnv1a64_bytes(data):016x}"


def fnv1a64_bytes(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def write_gguf(spec: Spec, path: str):
    w = gguf.GGUFWriter(path, spec.arch)
    adders = {
        "u32": w.add_uint32,
        "f32": w.add_float32,
        "str": w.add_string,
        "bool": w.add_bool,
    }
    for key, typ, value in spec.metadata:
        adders[typ](key, value)
    # A SentencePiece-style vocab llama.cpp loads: <unk> <s> </s>, 256 byte tokens, fillers.
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"t{i}" for i in range(VOCAB - len(tokens))]
    types = [2, 3, 3] + [6] * 256 + [1] * (VOCAB - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    for t in spec.tensors:
        n = int(np.prod(t["dims"]))
        values = tensor_values(t["name"], n, t["offset"], t["scale"])
        # gguf-py takes numpy shapes (outermost first) and reverses them into GGUF dims.
        w.add_tensor(t["name"], values.reshape(list(reversed(t["dims"]))))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run_llama_cpp(path: str):
    llm = llama_cpp.Llama(model_path=path, n_ctx=CTX, n_batch=CTX, n_ubatch=CTX, n_threads=2,
                          logits_all=True, type_k=0, type_v=0, flash_attn=False, verbose=False)
    llm.reset()
    llm.eval(PROMPT)
    logits = {str(p): np.array(llm.scores[p], dtype=np.float32) for p in LOGIT_POSITIONS}
    greedy, gaps = [], []
    last = logits[str(LOGIT_POSITIONS[-1])]
    for _ in range(GREEDY):
        order = np.argsort(-last, kind="stable")
        greedy.append(int(order[0]))
        gaps.append(float(last[order[0]] - last[order[1]]))
        llm.eval([greedy[-1]])
        last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    return logits, greedy, gaps, last


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", help="write the GGUF files into this directory")
    args = parser.parse_args()
    out_dir = args.keep or tempfile.mkdtemp(prefix="rotor-tiny-")
    os.makedirs(out_dir, exist_ok=True)
    for make in ARCHS:
        spec = make()
        path = os.path.join(out_dir, f"tiny_{spec.arch}.gguf")
        write_gguf(spec, path)
        logits, greedy, gaps, decode = run_llama_cpp(path)
        fixture = {
            "generator": f"llama-cpp-python {llama_cpp.__version__}, scripts/golden/tiny_models.py",
            "spec": spec.to_json(),
            "seed": SEED,
            "weights_fnv1a64": weights_hash(spec),
            "prompt": PROMPT,
            "logits": {p: [round(float(x), 6) for x in v] for p, v in logits.items()},
            "greedy": greedy,
            "greedy_gaps": [round(g, 6) for g in gaps],
            "decode_logits": [round(float(x), 6) for x in decode],
        }
        dest = os.path.join(FIXTURES, f"arch_{spec.arch}.json")
        with open(dest, "w") as f:
            json.dump(fixture, f, separators=(",", ":"))
            f.write("\n")
        print(f"{spec.arch}: greedy {greedy}, min gap {min(gaps):.4f}, "
              f"|logits| max {np.abs(logits[str(LOGIT_POSITIONS[-1])]).max():.2f} -> {dest}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
