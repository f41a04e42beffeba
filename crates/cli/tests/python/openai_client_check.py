#!/usr/bin/env python3
"""Drives a running Rotor server with the official `openai` Python client.

Usage: openai_client_check.py BASE_URL MODEL
Exits non-zero with a message on the first failed expectation. Run by crates/cli/tests/e2e.rs.
"""
import json
import sys
import urllib.request

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


models = [m.id for m in client.models.list().data]
check(model in models, f"/v1/models lists {model}: {models}")

question = [{"role": "user", "content": "What color is the sky on a clear day?"}]
r = client.chat.completions.create(model=model, messages=question, max_tokens=32, temperature=0)
text = r.choices[0].message.content
check(r.choices[0].message.role == "assistant", "chat role is assistant")
check("blue" in text.lower(), f"chat answer mentions blue: {text!r}")
check(r.choices[0].finish_reason in ("stop", "length"), f"finish_reason {r.choices[0].finish_reason}")
check(r.usage.prompt_tokens > 10 and r.usage.completion_tokens > 0, f"usage {r.usage}")
check(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, "total = prompt + completion")

pieces, finish, usage, chunks = [], None, None, 0
stream = client.chat.completions.create(model=model, messages=question, max_tokens=32, temperature=0,
                                        stream=True, stream_options={"include_usage": True})
for chunk in stream:
    chunks += 1
    if chunk.usage is not None:
        usage = chunk.usage
    for c in chunk.choices:
        if c.delta.content:
            pieces.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
streamed = "".join(pieces)
check(chunks > 3, f"streamed in {chunks} chunks")
check(streamed == text, f"greedy stream equals non-stream: {streamed!r} vs {text!r}")
check(finish in ("stop", "length"), f"stream finish_reason {finish}")
check(usage is not None and usage.completion_tokens == r.usage.completion_tokens, f"stream usage {usage}")

r = client.chat.completions.create(model=model, messages=question, max_tokens=5, temperature=0)
check(r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5, "max_tokens=5 stops with length")

c = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
check(len(c.choices[0].text) > 0 and c.usage.completion_tokens <= 8, f"completion: {c.choices[0].text!r}")

seeded = [client.chat.completions.create(model=model, messages=question, max_tokens=16, temperature=0.9,
                                         seed=42).choices[0].message.content for _ in range(2)]
check(seeded[0] == seeded[1], f"same seed, same text: {seeded}")

# Logprobs from the real engine (greedy): the chosen token is the best of its alternatives, the
# alternatives are sorted and are probabilities, and the tokens spell the answer.
r = client.chat.completions.create(model=model, messages=question, max_tokens=12, temperature=0,
                                   logprobs=True, top_logprobs=3)
entries = r.choices[0].logprobs.content
check(len(entries) == r.usage.completion_tokens or len(entries) == r.usage.completion_tokens - 1,
      f"one logprob entry per shown token: {len(entries)} vs {r.usage.completion_tokens}")
check("".join(e.token for e in entries) == r.choices[0].message.content, "logprob tokens spell the answer")
for e in entries:
    tops = [t.logprob for t in e.top_logprobs]
    check(len(tops) == 3 and tops == sorted(tops, reverse=True), f"3 sorted alternatives: {tops}")
    check(e.top_logprobs[0].token == e.token and abs(e.logprob - tops[0]) < 1e-4,
          f"greedy token {e.token!r} is the best alternative {e.top_logprobs[0].token!r}")
    check(e.logprob <= 0 and sum(2.718281828 ** t for t in tops) <= 1.0001, f"probabilities: {tops}")
streamed = []
for chunk in client.chat.completions.create(model=model, messages=question, max_tokens=12, temperature=0,
                                            logprobs=True, top_logprobs=3, stream=True):
    for c in chunk.choices:
        if c.logprobs and c.logprobs.content:
            streamed.extend(c.logprobs.content)
check([(e.token, round(e.logprob, 4)) for e in streamed] == [(e.token, round(e.logprob, 4)) for e in entries],
      "streamed logprobs equal the whole answer's")
c = client.completions.create(model=model, prompt="The capital of France is", max_tokens=4, temperature=0,
                              logprobs=2)
lp = c.choices[0].logprobs
check("".join(lp.tokens) == c.choices[0].text and len(lp.token_logprobs) == len(lp.tokens)
      and all(len(t) <= 2 for t in lp.top_logprobs) and lp.text_offset[0] == 0,
      f"completion logprobs: {lp}")

# logit_bias: banning the greedy first token changes the first token.
first = entries[0]
tokenize = urllib.request.Request(
    base.removesuffix("/v1") + "/tokenize", method="POST", headers={"Content-Type": "application/json"},
    data=json.dumps({"model": model, "prompt": first.token, "add_special_tokens": False}).encode())
ids = json.load(urllib.request.urlopen(tokenize, timeout=30))["tokens"]
check(len(ids) == 1, f"first token {first.token!r} is one token: {ids}")
r = client.chat.completions.create(model=model, messages=question, max_tokens=4, temperature=0, logprobs=True,
                                   logit_bias={str(ids[0]): -100})
check(r.choices[0].logprobs.content[0].token != first.token,
      f"logit_bias -100 bans {first.token!r}: got {r.choices[0].logprobs.content[0].token!r}")
try:
    client.chat.completions.create(model=model, messages=question, logit_bias={"99999999": 1})
    check(False, "out-of-vocabulary logit_bias raises")
except openai.BadRequestError as e:
    check(e.body.get("param") == "logit_bias", f"bad logit_bias is a 400 naming it: {e.body}")

try:
    client.chat.completions.create(model="no-such-model", messages=question)
    check(False, "unknown model raises")
except openai.NotFoundError as e:
    check(e.status_code == 404, "unknown model is a 404 NotFoundError")

# Several choices: n (whole and streamed), a list of prompts, best_of, echo.
r = client.chat.completions.create(model=model, messages=question, n=3, max_tokens=6, temperature=0.9, seed=7)
check([c.index for c in r.choices] == [0, 1, 2], f"n=3 gives choices 0..2: {r.choices}")
check(all(c.message.content for c in r.choices), "every choice has content")
check(len({c.message.content for c in r.choices}) > 1, f"sampled choices differ: {[c.message.content for c in r.choices]}")
again = client.chat.completions.create(model=model, messages=question, n=3, max_tokens=6, temperature=0.9, seed=7)
check([c.message.content for c in again.choices] == [c.message.content for c in r.choices], "seeded n=3 reproduces")
texts = {}
finished = set()
for chunk in client.chat.completions.create(model=model, messages=question, n=2, max_tokens=5, temperature=0, stream=True):
    for c in chunk.choices:
        texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
        if c.finish_reason:
            finished.add(c.index)
check(set(texts) == {0, 1} and finished == {0, 1}, f"streamed n=2 has both choices: {texts} {finished}")
check(texts[0] == texts[1], f"greedy choices are equal: {texts}")
r = client.completions.create(model=model, prompt=["The capital of France is", "One, two,"], max_tokens=3, temperature=0)
check([c.index for c in r.choices] == [0, 1], f"two prompts, two choices: {r.choices}")
single = client.completions.create(model=model, prompt="One, two,", max_tokens=3, temperature=0)
check(r.choices[1].text == single.choices[0].text, f"a prompt in a list answers as alone: {r.choices[1].text!r} vs {single.choices[0].text!r}")
r = client.completions.create(model=model, prompt="The sky is", max_tokens=4, n=2, best_of=4, temperature=1.0, seed=3, logprobs=0)
check(len(r.choices) == 2, f"best_of=4, n=2 gives 2 choices: {r.choices}")
sums = [sum(c.logprobs.token_logprobs) for c in r.choices]
check(sums[0] >= sums[1], f"best first: {sums}")
r = client.completions.create(model=model, prompt="The sky is", max_tokens=3, temperature=0, echo=True)
check(r.choices[0].text.startswith("The sky is") and len(r.choices[0].text) > len("The sky is"), f"echo: {r.choices[0].text!r}")
# lm-evaluation-harness's loglikelihood request: echo + logprobs + max_tokens 0 scores the prompt.
r = client.completions.create(model=model, prompt="The capital of France is Paris", echo=True, logprobs=1, max_tokens=0)
lp = r.choices[0].logprobs
check(r.choices[0].text == "The capital of France is Paris", f"echo alone: {r.choices[0].text!r}")
check(lp.token_logprobs[0] is None and all(v <= 0 for v in lp.token_logprobs[1:]), f"prompt logprobs: {lp.token_logprobs}")
check("".join(lp.tokens) == r.choices[0].text and r.usage.completion_tokens == 0, f"tokens {lp.tokens}, usage {r.usage}")
try:
    client.chat.completions.create(model=model, messages=question, n=17)
    check(False, "n=17 raises")
except openai.BadRequestError as e:
    check(e.body.get("param") == "n", f"n=17 is a 400 naming param n: {e.body}")

print("all openai client checks passed")
