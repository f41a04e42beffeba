#!/usr/bin/env python3
"""Regenerate Rotor's K-quant/Q5/BF16 dequantization fixture with gguf-py (ggml's own Python package,
an implementation independent of ours: numpy, written from the ggml block layouts).

Writes crates/model/tests/fixtures/kquant_reference.json:
  {"generator": ..., "gguf_version": ..., "types": {"Q4_K": [{"block": HEX, "values": HEX}, ...]}}
where "block" is one block's bytes and "values" its dequantized f32 (256 for the K-quants and
BF16, 32 for Q5_0/Q5_1), little-endian, as hex (bit exact). Blocks are random bytes (every bit pattern of codes, scales and masks is valid) with
finite f16 super-scales of random sign and magnitude 2^-12..2, plus two edge blocks per type:
all code/scale bytes 0x00 and all 0xFF. Q5_0/Q5_1 blocks are built the same way (random
qh and nibbles, random f16 d and, for Q5_1, m). BF16 "blocks" are 256 random finite bf16 values
(normals, subnormals, signed zeros).

Usage (from the repo root):
  python3 -m venv /tmp/kqenv && /tmp/kqenv/bin/pip install gguf numpy
  /tmp/kqenv/bin/python scripts/golden/kquant_fixtures.py
"""
import json
import os
from importlib import metadata

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates/model/tests/fixtures/kquant_reference.json")
SEED = 20240611
RANDOM_BLOCKS = 4

# type -> (block bytes, byte offsets of its f16 super-scales)
K_TYPES = {
    "Q2_K": (T.Q2_K, 84, [80, 82]),
    "Q3_K": (T.Q3_K, 110, [108]),
    "Q4_K": (T.Q4_K, 144, [0, 2]),
    "Q5_K": (T.Q5_K, 176, [0, 2]),
    "Q6_K": (T.Q6_K, 210, [208]),
}

# The legacy 5-bit 32-blocks (llama.cpp's K-quant files use them for rows that are not whole
# 256-blocks): d (and m) as f16, then qh and the nibbles. Drawn after BF16 so the older types'
# blocks stay as they were.
Q5_TYPES = {
    "Q5_0": (T.Q5_0, 22, [0]),
    "Q5_1": (T.Q5_1, 24, [0, 2]),
}


def put_f16(block, at, value):
    block[at : at + 2] = np.frombuffer(np.float16(value).tobytes(), dtype=np.uint8)


def random_scale(rng):
    return float(rng.choice([-1.0, 1.0]) * 2.0 ** rng.uniform(-12.0, 1.0))


def k_blocks(rng, size, scale_offsets):
    blocks = []
    for _ in range(RANDOM_BLOCKS):
        b = rng.integers(0, 256, size=size, dtype=np.uint8)
        for at in scale_offsets:
            put_f16(b, at, random_scale(rng))
        blocks.append(b)
    for fill in (0x00, 0xFF):
        b = np.full(size, fill, dtype=np.uint8)
        for at in scale_offsets:
            put_f16(b, at, random_scale(rng))
        blocks.append(b)
    return blocks


def bf16_blocks(rng):
    blocks = []
    for _ in range(2):
        bits = rng.integers(0, 1 << 16, size=256, dtype=np.uint32).astype(np.uint16)
        # Exponent all ones is inf/NaN: clear one exponent bit to keep every value finite.
        special = (bits & 0x7F80) == 0x7F80
        bits[special] &= np.uint16(0xFF7F)
        bits[:4] = [0x0000, 0x8000, 0x0001, 0x807F]  # +0, -0, subnormals
        blocks.append(bits.view(np.uint8).copy())
    return blocks


def entry(block, qtype, n):
    values = dequantize(block, qtype).astype("<f4").reshape(-1)
    assert values.shape == (n,), values.shape
    assert np.isfinite(values).all()
    return {"block": block.tobytes().hex(), "values": values.tobytes().hex()}


def main():
    rng = np.random.default_rng(SEED)
    types = {}
    for name, (qtype, size, offsets) in K_TYPES.items():
        types[name] = [entry(b, qtype, 256) for b in k_blocks(rng, size, offsets)]
    types["BF16"] = [entry(b, T.BF16, 256) for b in bf16_blocks(rng)]
    for name, (qtype, size, offsets) in Q5_TYPES.items():
        types[name] = [entry(b, qtype, 32) for b in k_blocks(rng, size, offsets)]
    doc = {
        "generator": "scripts/golden/kquant_fixtures.py (gguf.quants.dequantize)",
        "gguf_version": metadata.version("gguf"),
        "numpy_version": np.__version__,
        "seed": SEED,
        "types": types,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
