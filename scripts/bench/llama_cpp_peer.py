#!/usr/bin/env python3
"""llama.cpp's speed on the same GGUF and thread count, as the peer for Rotor's engine benchmark.

Measures, like `benches/forward.rs` of rotor-model: prefill tokens/s for 128- and 512-token prompts
and single-stream greedy decode tokens/s over 128 tokens. Median of N runs each, as the Rust bench.
Usage: llama_cpp_peer.py MODEL.gguf THREADS [RUNS]   (needs llama-cpp-python; see scripts/golden)
"""
import sys
import statistics
import time

import llama_cpp

model, threads = sys.argv[1], int(sys.argv[2])
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_batch=512, n_ubatch=512, n_threads=threads,
                      n_threads_batch=threads, logits_all=False, verbose=False)
vocab = llm.n_vocab()


def prompt(n):
    return [(i * 7919 + 13) % (vocab - 200) + 100 for i in range(n)]


for n in (128, 512):
    rates = []
    for _ in range(runs):
        llm.reset()
        t = time.perf_counter()
        llm.eval(prompt(n))
        rates.append(n / (time.perf_counter() - t))
    print(f"llama.cpp prefill {n:4} tokens: {statistics.median(rates):7.1f} tok/s (threads={threads})")

# Decode through llama.cpp's C API (llama_decode + llama_get_logits_ith), one token per call, so
# the figure is llama.cpp's and not the Python wrapper's per-call bookkeeping.
import numpy as np

ctx = llm._ctx.ctx
batch = llama_cpp.llama_batch_init(1, 0, 1)
rates = []
for _ in range(runs):
    llm.reset()
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    start = prompt(16)
    llm.eval(start)
    tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    pos = len(start)
    t = time.perf_counter()
    for _ in range(128):
        batch.n_tokens = 1
        batch.token[0] = tok
        batch.pos[0] = pos
        batch.n_seq_id[0] = 1
        batch.seq_id[0][0] = 0
        batch.logits[0] = 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, 0), shape=(vocab,))
        tok = int(logits.argmax())
        pos += 1
    rates.append(128 / (time.perf_counter() - t))
llama_cpp.llama_batch_free(batch)
print(f"llama.cpp decode 128 tokens, 1 stream: {statistics.median(rates):7.1f} tok/s (threads={threads})")
