#!/usr/bin/env python3
"""Golden fixtures for scoring a prompt with the default model, computed by llama.cpp itself
(llama-cpp-python), independent of Rotor:

- embeddings: llama.cpp's per-token embeddings (its `result_norm`: the final hidden state after the
  output norm), pooled by mean and by last token, then L2-normalised — what llama-server's
  /v1/embeddings returns with `--pooling mean|last`;
- prompt logprobs: for every prompt position after the first, the log-probability of the actual
  next prompt token and the top-5 alternatives (log-softmax of the full-vocabulary logits), which
  is what `/v1/completions` with `echo: true, logprobs: 5, max_tokens: 0` reports.

Both use an f32 KV cache (see requant_golden.py). Writes
crates/model/tests/fixtures/scoring_smollm2_q4_1.json, read by crates/model/tests/scoring_golden.rs.

Usage (from the repo root; the reference venv as in gen_fixtures.py):
  /work/refenv/bin/python scripts/golden/scoring_golden.py "$(target/release/rotor fetch-model)"
"""
import hashlib
import json
import os
import sys

import llama_cpp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXTS = [
    ("capital", "The capital of France is Paris."),
    ("code", "def add(a, b):\n    return a + b\n"),
    ("unicode", "Grüße aus München — 東京 and 🚀 rockets are fast."),
    ("long", "Rotor serves large language models across many processes and machines. " * 6),
]
TOP = 5


def log_softmax(v):
    v = np.asarray(v, dtype=np.float64)
    m = v.max()
    return v - m - np.log(np.exp(v - m).sum())


def main():
    path = sys.argv[1]
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    f32 = dict(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    emb = llama_cpp.Llama(model_path=path, n_ctx=1024, n_batch=1024, n_threads=2, embedding=True,
                          pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE, verbose=False, **f32)
    lm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_batch=1024, n_threads=2,
                         logits_all=True, verbose=False, **f32)
    texts = []
    for name, text in TEXTS:
        ids = lm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        per_token = np.array(emb.embed(text, normalize=False), dtype=np.float64)
        assert per_token.shape[0] == len(ids), (name, per_token.shape, len(ids))
        mean = per_token.mean(axis=0)
        last = per_token[-1]
        lm.reset()
        lm.eval(ids)
        positions = []
        for i in range(1, len(ids)):
            lp = log_softmax(lm.scores[i - 1])
            order = np.argsort(-lp, kind="stable")[:TOP]
            positions.append({"token": int(ids[i]), "logprob": float(lp[ids[i]]),
                              "top": [[int(t), float(lp[t])] for t in order]})
        texts.append({"name": name, "text": text, "token_ids": ids,
                      "embedding_mean": [float(x) for x in mean / np.linalg.norm(mean)],
                      "embedding_last": [float(x) for x in last / np.linalg.norm(last)],
                      "prompt_logprobs": positions})
        print(name, len(ids), "tokens; sum logprob", sum(p["logprob"] for p in positions))
    out = {"generator": f"llama-cpp-python {llama_cpp.__version__}", "kv_cache": "f32",
           "model": os.path.basename(path), "model_sha256": sha, "top": TOP, "texts": texts}
    dst = os.path.join(ROOT, "crates/model/tests/fixtures/scoring_smollm2_q4_1.json")
    with open(dst, "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", dst)


if __name__ == "__main__":
    main()
