#!/usr/bin/env python3
"""Drives Rotor in front of an external engine with the official `openai` client: chat and
completions, streaming and not; the streamed text must equal the non-streamed text (greedy).

Usage: openai_external_check.py BASE_URL MODEL
Prints one JSON line {"completion": TEXT, "chat": TEXT} and exits non-zero on the first failed
expectation. Run by crates/cli/tests/external_engines.rs.
"""
import json
import sys

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}", file=sys.stderr)


check(model in [m.id for m in client.models.list().data], f"/v1/models lists {model}")

question = [{"role": "user", "content": "What color is the sky on a clear day?"}]
r = client.chat.completions.create(model=model, messages=question, max_tokens=24, temperature=0)
chat = r.choices[0].message.content
check(len(chat) > 0, f"chat answer {chat!r}")
check(r.usage.prompt_tokens > 10 and r.usage.completion_tokens > 0, f"chat usage {r.usage}")
pieces, usage = [], None
for chunk in client.chat.completions.create(model=model, messages=question, max_tokens=24, temperature=0,
                                            stream=True, stream_options={"include_usage": True}):
    if chunk.usage is not None:
        usage = chunk.usage
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
check(len(pieces) > 1, f"chat streamed in {len(pieces)} pieces")
check("".join(pieces) == chat, f"streamed chat {''.join(pieces)!r} == {chat!r}")
check(usage is not None and usage.completion_tokens == r.usage.completion_tokens, f"stream usage {usage}")

prompt = "The capital of France is"
c = client.completions.create(model=model, prompt=prompt, max_tokens=16, temperature=0)
completion = c.choices[0].text
check(c.choices[0].finish_reason in ("stop", "length"), f"finish_reason {c.choices[0].finish_reason}")
pieces = [ch.choices[0].text for ch in client.completions.create(
    model=model, prompt=prompt, max_tokens=16, temperature=0, stream=True) if ch.choices]
check("".join(pieces) == completion, f"streamed completion {''.join(pieces)!r} == {completion!r}")
print(json.dumps({"completion": completion, "chat": chat}))
