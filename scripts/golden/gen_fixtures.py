#!/usr/bin/env python3
"""Regenerate Rotor's reference fixtures with llama.cpp (through llama-cpp-python), an implementation
independent of ours.

Writes:
  crates/model/tests/fixtures/golden_smollm2_q4_1.json   last-position top-64 logits and a 32-token
                                                         greedy continuation for several prompts
  crates/text/tests/fixtures/tokenizer_reference.json    llama.cpp token ids for varied strings

Usage (from the repo root; builds llama.cpp from source, ~10 min on 2 cores):
  python3 -m venv /tmp/refenv
  CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_OPENMP=OFF" /tmp/refenv/bin/pip install llama-cpp-python==0.3.36 numpy jinja2
  /tmp/refenv/bin/python scripts/golden/gen_fixtures.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import hashlib
import json
import os
import sys

import jinja2
import llama_cpp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = os.path.expanduser("~/.cache/rotor/models/SmolLM2-135M-Instruct.Q4_1.gguf")
TOP = 64
GREEDY = 32

TEXTS = [
    "",
    "Hello world, it's 2024-11-23: 12345 tokens!\n  indented <|im_start|>x",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing   ",
    "tabs\tand\nnewlines\r\n\n\nruns",
    "Ünïcödé: naïve café, Straße, Ελληνικά, русский",
    "日本語のテキストと中文字符",
    "emoji 🦀🚀 and 👨‍👩‍👧 family",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "numbers 3.14159 1,000,000 0x1F 1e-9 007",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after special",
    "special-like but not: <|im_start |> <im_end>",
    "a" * 100,
    "URL https://example.com/path?q=1&r=2#frag and email a.b@c.org",
    "    \n\t \u00a0 mixed\u2003whitespace",
]

PROMPTS = [
    ("chat_sky", "chat", "What color is the sky on a clear day?"),
    ("capital", "raw", "The capital of France is"),
    ("code", "raw", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("chat_story", "chat", "Write a short story about a robot who learns to paint. Make it three sentences long, "
     "and give the robot a name. The story should have a happy ending and mention the color blue."),
]


def render_chat(template: str, user: str) -> str:
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(
        messages=[{"role": "user", "content": user}], add_generation_prompt=True,
        bos_token="<|im_start|>", eos_token="<|im_end|>")


def main() -> None:
    model_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    sha = hashlib.sha256(open(model_path, "rb").read()).hexdigest()
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=2048, n_batch=512, n_threads=2,
                          logits_all=True, verbose=False)
    template = llm.metadata["tokenizer.chat_template"]
    generator = f"llama-cpp-python {llama_cpp.__version__}"

    prompts = []
    for name, kind, text in PROMPTS:
        if kind == "chat":
            text = render_chat(template, text)
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        order = np.argsort(-last, kind="stable")[:TOP]
        top = [[int(i), float(last[i])] for i in order]
        greedy = []
        for _ in range(GREEDY):
            tok = int(np.argmax(np.array(llm.scores[llm.n_tokens - 1])))
            greedy.append(tok)
            llm.eval([tok])
        prompts.append({"name": name, "text": text, "token_ids": ids, "last_logits_top": top,
                        "greedy": greedy, "greedy_text": llm.detokenize(greedy).decode("utf-8", "replace")})
        print(name, len(ids), "tokens; greedy:", repr(prompts[-1]["greedy_text"]))

    golden = {"generator": generator, "model_sha256": sha, "top": TOP, "prompts": prompts}
    path = os.path.join(ROOT, "crates/model/tests/fixtures/golden_smollm2_q4_1.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)

    cases = [{"text": t, "ids": llm.tokenize(t.encode("utf-8"), add_bos=False, special=True)} for t in TEXTS]
    path = os.path.join(ROOT, "crates/text/tests/fixtures/tokenizer_reference.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"generator": generator, "model_sha256": sha, "cases": cases}, f, indent=1, ensure_ascii=False)
    print("wrote fixtures")


if __name__ == "__main__":
    main()
