#!/usr/bin/env python3
"""Golden next-token logits for the real Gemma 3 270M Q4_K_M from llama.cpp (llama-cpp-python),
an implementation independent of Rotor's.

Writes crates/model/tests/fixtures/golden_gemma3_270m.json: the prompt ids (Gemma BOS + "The
capital of France is"), llama.cpp's top TOP_K next-token ids with their logits (f32, as decimal),
and llama.cpp's greedy continuation of GREEDY tokens.

Usage (from the repo root; the model from `rotor fetch-model gemma3-270m` or ROTOR_TEST_GEMMA):
  /work/refenv/bin/python scripts/golden/gemma3_golden.py
"""
import json
import os
from importlib import metadata

import llama_cpp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates/model/tests/fixtures/golden_gemma3_270m.json")
FILE = "gemma-3-270m-q4_k_m.gguf"
PROMPT = [2, 818, 5279, 529, 7001, 563]
TOP_K = 32
GREEDY = 8


def model_path():
    if os.environ.get("ROTOR_TEST_GEMMA"):
        return os.environ["ROTOR_TEST_GEMMA"]
    cache = os.environ.get("ROTOR_CACHE_DIR") or os.path.expanduser("~/.cache/rotor")
    return os.path.join(cache, "models", FILE)


def main():
    llm = llama_cpp.Llama(model_path=model_path(), logits_all=False, n_ctx=64, verbose=False)

    def last_logits():
        # With logits_all=False llama-cpp-python no longer fills `scores`: read the context's.
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()

    tokens = list(PROMPT)
    llm.eval(tokens)
    first = last_logits()
    top = np.argsort(-first, kind="stable")[:TOP_K]
    greedy = []
    logits = first
    for _ in range(GREEDY):
        nxt = int(logits.argmax())
        greedy.append(nxt)
        llm.eval([nxt])
        logits = last_logits()
    doc = {
        "generator": "scripts/golden/gemma3_golden.py (llama-cpp-python)",
        "llama_cpp_python_version": metadata.version("llama_cpp_python"),
        "model": FILE,
        "prompt_ids": PROMPT,
        "top_ids": [int(i) for i in top],
        "top_logits": [float(first[i]) for i in top],
        "greedy": greedy,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: top-1 {doc['top_ids'][0]}, greedy {greedy}")


if __name__ == "__main__":
    main()
