#!/usr/bin/env python3
"""Upper bounds on the prefix-cache hit rate a cluster can reach on a Mooncake trace.

Counts prompt tokens in full engine blocks (as Rotor's prefix cache does) over the same requests
`rotor bench --trace FILE --num-requests N --max-input-tokens M` sends, and prints:
  - infinite: every block ever computed stays cached, on every worker (no routing can beat it);
  - capacity: one LRU pool with the cluster's total capacity (perfect routing that never holds a
    block twice), the bound "the workers' capacity allows";
  - with --timing BENCH_JSON (a `rotor bench --output-json` file of a run of those requests):
    computed-by-arrival, the infinite cache counting only blocks whose computing request had its
    first token (its prefill done) before the request was sent. Replayed traces overlap requests
    of one conversation, and no router can reuse a block nobody has computed yet.
Usage: kv-hit-bound.py TRACE --num-requests N [--max-input-tokens M] --capacity-blocks B
       [--engine-block 16] [--trace-block 512] [--timing BENCH_JSON]
"""
import argparse
import json
from collections import OrderedDict


def requests(path, n, max_input):
    with open(path) as f:
        for i, line in enumerate(f):
            if n is not None and i >= n:
                return
            r = json.loads(line)
            length = r["input_length"]
            if max_input is not None:
                length = min(length, max_input)
            yield length, r["hash_ids"]


def engine_blocks(length, hash_ids, trace_block, engine_block):
    """Chained identities of the prompt's full engine blocks."""
    out = []
    for b in range(length // engine_block):
        start = b * engine_block
        hid_index = start // trace_block
        # A block spanning two trace blocks depends on both; identity = the prefix of trace ids
        # covering it plus the offset, which chains like the engine's hashes.
        last = (start + engine_block - 1) // trace_block
        out.append((tuple(hash_ids[: last + 1]), start % trace_block))
        del hid_index
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--num-requests", type=int)
    ap.add_argument("--max-input-tokens", type=int)
    ap.add_argument("--capacity-blocks", type=int, required=True)
    ap.add_argument("--engine-block", type=int, default=16)
    ap.add_argument("--trace-block", type=int, default=512)
    ap.add_argument("--timing")
    a = ap.parse_args()
    timing = None
    if a.timing:
        with open(a.timing) as f:
            records = json.load(f)["records"]
        timing = {r["index"]: (r["start_ms"], r["start_ms"] + (r.get("ttft_ms") or float("inf")))
                  for r in records}
    # Block -> earliest time it was computed (first token of a request holding it).
    ready = {}
    timed_hits = 0

    seen = set()
    lru = OrderedDict()
    total = inf_hits = cap_hits = 0
    for i, (length, hids) in enumerate(requests(a.trace, a.num_requests, a.max_input_tokens)):
        blocks = engine_blocks(length, hids, a.trace_block, a.engine_block)
        total += length
        if timing is not None:
            sent, first_token = timing.get(i, (float("inf"), float("inf")))
            for key in blocks:
                if ready.get(key, float("inf")) > sent:
                    break
                timed_hits += a.engine_block
            for key in blocks:
                ready[key] = min(ready.get(key, float("inf")), first_token)
        # Prefix hits: leading blocks present (a chain breaks at the first miss).
        for key in blocks:
            if key not in seen:
                break
            inf_hits += a.engine_block
        for key in blocks:
            if key not in lru:
                break
            cap_hits += a.engine_block
        for key in blocks:
            seen.add(key)
            lru[key] = True
            lru.move_to_end(key)
            while len(lru) > a.capacity_blocks:
                lru.popitem(last=False)
    out = {
        "prompt_tokens": total,
        "infinite_cache_hit_rate": inf_hits / total if total else 0.0,
        "capacity_lru_hit_rate": cap_hits / total if total else 0.0,
        "capacity_blocks": a.capacity_blocks,
        "engine_block": a.engine_block,
    }
    if timing is not None:
        out["computed_by_arrival_hit_rate"] = timed_hits / total if total else 0.0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
