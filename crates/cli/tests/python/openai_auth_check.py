#!/usr/bin/env python3
"""Checks API-key handling of a running Rotor server with the official `openai` Python client.

Usage: openai_auth_check.py BASE_URL MODEL GOOD_KEY
Exits non-zero with a message on the first failed expectation. Run by crates/cli/tests/http_api.rs.
"""
import sys

import openai

base, model, good_key = sys.argv[1], sys.argv[2], sys.argv[3]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def client(key):
    return openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=60)


question = [{"role": "user", "content": "What color is the sky?"}]

for key in ("sk-not-this-one", good_key + "x"):
    try:
        client(key).chat.completions.create(model=model, messages=question, max_tokens=4)
        check(False, f"key {key!r} is refused")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, "a wrong key is a 401 AuthenticationError")
        check(e.code == "invalid_api_key", f"code invalid_api_key: {e.body}")
        check(e.type == "invalid_request_error", f"type invalid_request_error: {e.body}")

try:
    client("sk-wrong").models.list()
    check(False, "listing models needs the key too")
except openai.AuthenticationError as e:
    check(e.status_code == 401, "GET /v1/models without the key is a 401")

good = client(good_key)
models = [m.id for m in good.models.list().data]
check(model in models, f"with the key, /v1/models lists {model}: {models}")
raw = good.chat.completions.with_raw_response.create(
    model=model, messages=question, max_tokens=4, extra_headers={"x-request-id": "py-auth-1"})
r = raw.parse()
check(raw.headers.get("x-request-id") == "py-auth-1", f"x-request-id echoed: {raw.headers}")
check(r.id.startswith("chatcmpl-py-auth-1-"), f"completion id carries the request id: {r.id}")
check(r.usage.completion_tokens == 4, f"usage {r.usage}")
pieces = []
for chunk in good.completions.create(model=model, prompt="Hello", max_tokens=3, stream=True):
    pieces.extend(c.text for c in chunk.choices)
check(len(pieces) >= 1, f"a streamed completion with the key: {pieces}")

print("all openai auth checks passed")
