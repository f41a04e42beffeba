#!/usr/bin/env python3
"""Golden fixtures for the default model requantized by llama.cpp's llama-quantize (Q4_K_M, Q5_K_M,
Q6_K, Q8_0; scripts/requantize-default-model writes the files): for each file, its sha256, and
llama.cpp's top-64 last-position logits and greedy continuation for the prompts of
gen_fixtures.py, computed by llama.cpp itself (llama-cpp-python), independent of Rotor.

Writes crates/model/tests/fixtures/golden_smollm2_<quant>.json, read by
crates/model/tests/requant_golden.rs.

Usage (from the repo root; the reference venv as in gen_fixtures.py):
  /work/refenv/bin/python scripts/golden/requant_golden.py "$(scripts/requantize-default-model)"
"""
import hashlib
import json
import os
import sys

import llama_cpp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import PROMPTS, ROOT, TOP, render_chat  # noqa: E402

QUANTS = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]
GREEDY = 16


def fixture(path):
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    # f32 K/V: llama.cpp's default f16 cache alone moves these logits by up to 0.5 (measured on
    # the Q8_0 file), more than the kernels' differences; Rotor's test runs an f32 cache too.
    llm = llama_cpp.Llama(model_path=path, n_ctx=2048, n_batch=512, n_threads=2,
                          logits_all=True, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    template = llm.metadata["tokenizer.chat_template"]
    prompts = []
    for name, kind, text in PROMPTS:
        if kind == "chat":
            text = render_chat(template, text)
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        order = np.argsort(-last, kind="stable")[:TOP]
        greedy = []
        for _ in range(GREEDY):
            tok = int(np.argmax(np.array(llm.scores[llm.n_tokens - 1])))
            greedy.append(tok)
            llm.eval([tok])
        prompts.append({"name": name, "token_ids": ids,
                        "last_logits_top": [[int(i), float(last[i])] for i in order],
                        "greedy": greedy,
                        "greedy_text": llm.detokenize(greedy).decode("utf-8", "replace")})
        print(os.path.basename(path), name, repr(prompts[-1]["greedy_text"]))
    return {"generator": f"llama-cpp-python {llama_cpp.__version__}",
            "quantized_with": "llama-quantize --allow-requantize (scripts/requantize-default-model)",
            "kv_cache": "f32", "model": os.path.basename(path), "model_sha256": sha, "top": TOP, "prompts": prompts}


def main():
    directory = sys.argv[1]
    for quant in QUANTS:
        doc = fixture(os.path.join(directory, f"SmolLM2-135M-Instruct.{quant}.gguf"))
        out = os.path.join(ROOT, f"crates/model/tests/fixtures/golden_smollm2_{quant.lower()}.json")
        with open(out, "w") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print("wrote", out)


if __name__ == "__main__":
    main()
