#!/usr/bin/env python3
"""Markdown tables from `rotor bench --output-json` files written by the serving scripts.

  serving_table.py load   OUT_DIR CONC...   # OUT/rotor-cC.json vs OUT/llama.cpp-cC.json
  serving_table.py prefix OUT_DIR NAME...   # OUT/NAME-prefix.json
  serving_table.py sweep  OUT_DIR BS...     # OUT/rotor-bsBS.json
Token counts are checked against what was asked: a note follows any table where a server did not
report usage, or returned other than the asked number of output tokens.
"""
import json
import os
import sys


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def ms(dist, key):
    return f"{dist[key]:.0f}" if dist and dist.get(key) is not None else "-"


def pair(dist):
    return f"{ms(dist, 'p50')} / {ms(dist, 'p99')}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def checks(name, report, fresh_prompts=True):
    """Notes on token counts that are not what was asked, and on cache hits where every prompt
    should be new to the server."""
    s = report["summary"]
    notes = []
    # Random word prompts share a first word or two by chance; more than 1% cached is not chance.
    if fresh_prompts and (s.get("cached_tokens") or 0) > 0.01 * s["input_tokens"]:
        notes.append(f"{name}: {s['cached_tokens']} of {s['input_tokens']} prompt tokens were cached")
    if s["ok"] < s["planned_requests"]:
        kinds = "; ".join(f"{n} x {m}" for m, n in list(s["error_kinds"].items())[:2])
        notes.append(f"{name}: {s['ok']}/{s['planned_requests']} ok {kinds}")
    if s.get("usage_reported", 0) < s["ok"]:
        notes.append(f"{name}: usage missing in {s['ok'] - s['usage_reported']} responses")
    if s["output_tokens"] != s.get("expected_output_tokens", s["output_tokens"]):
        notes.append(f"{name}: {s['output_tokens']} output tokens, asked {s['expected_output_tokens']}")
    if s["ok"]:
        counted = s["input_tokens"] / s["ok"]
        planned = s.get("planned_input_tokens", 0) / s["ok"]
        if abs(counted - planned) > 2:
            notes.append(f"{name}: {counted:.1f} prompt tokens per request (server), planned {planned:.0f}")
    return notes


def table_load(out, concs):
    print("| streams | Rotor out tok/s | llama.cpp out tok/s | Rotor / llama.cpp | "
          "TTFT p50 / p99 ms Rotor | TTFT p50 / p99 ms llama.cpp | ITL p50 / p99 ms Rotor | "
          "ITL p50 / p99 ms llama.cpp |")
    print("|---|---|---|---|---|---|---|---|")
    notes = []
    for c in concs:
        r = load(f"{out}/rotor-c{c}.json")
        l = load(f"{out}/llama.cpp-c{c}.json")
        rs = r["summary"] if r else None
        ls = l["summary"] if l else None
        rt = rs["output_tokens_per_s"] if rs else None
        lt = ls["output_tokens_per_s"] if ls else None
        print(f"| {c} | {rt:.1f} | " if rt is not None else f"| {c} | - | ", end="")
        print(f"{lt:.1f} | " if lt is not None else "- | ", end="")
        print(f"{ratio(rt, lt)} | {pair(rs and rs['ttft_ms'])} | {pair(ls and ls['ttft_ms'])} | "
              f"{pair(rs and rs['itl_ms'])} | {pair(ls and ls['itl_ms'])} |")
        for name, rep in (("rotor", r), ("llama.cpp", l)):
            if rep:
                notes += [f"{n} (streams {c})" for n in checks(name, rep)]
    for n in notes:
        print(f"\nnote: {n}", end="")
    print()


def table_prefix(out, names):
    print("| server | A: first use TTFT ms | B: shared prefix TTFT ms | C: fresh prefix TTFT ms | "
          "C / B | prompt tokens (B) | cached tokens (B / C) |")
    print("|---|---|---|---|---|---|---|")
    notes = []
    for name in names:
        rep = load(f"{out}/{name}-prefix.json")
        if not rep or not rep.get("shared_prefix"):
            print(f"| {name} | - | - | - | - | - | - |")
            continue
        sp = rep["shared_prefix"]

        def med(role, key="ttft_median_ms"):
            v = sp[role].get(key)
            return f"{v:.0f}" if v is not None else "-"

        ratio_s = f"{sp['fresh_over_shared_ttft']:.2f}x" if sp.get("fresh_over_shared_ttft") else "-"
        print(f"| {name} | {med('first')} | {med('shared_prefix')} | {med('fresh_prefix')} | {ratio_s} | "
              f"{med('shared_prefix', 'input_tokens_median')} | "
              f"{med('shared_prefix', 'cached_tokens_median')} / {med('fresh_prefix', 'cached_tokens_median')} |")
        notes += checks(name, rep, fresh_prompts=False)
    for n in notes:
        print(f"\nnote: {n}", end="")
    print()


def table_sweep(out, sizes):
    print("| block size | out tok/s | TTFT p50 / p99 ms | ITL p50 / p99 ms | done |")
    print("|---|---|---|---|---|")
    notes = []
    for bs in sizes:
        rep = load(f"{out}/rotor-bs{bs}.json")
        if not rep:
            print(f"| {bs} | - | - | - | - |")
            continue
        s = rep["summary"]
        print(f"| {bs} | {s['output_tokens_per_s']:.1f} | {pair(s['ttft_ms'])} | {pair(s['itl_ms'])} | "
              f"{s['ok']}/{s['planned_requests']} |")
        notes += [f"{n} (block size {bs})" for n in checks("rotor", rep)]
    for n in notes:
        print(f"\nnote: {n}", end="")
    print()


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("load", "prefix", "sweep"):
        sys.exit(__doc__)
    kind, out, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    {"load": table_load, "prefix": table_prefix, "sweep": table_sweep}[kind](out, rest)
