"""The official openai client against Rotor's POST /v1/embeddings, compared with llama.cpp's
pooled embeddings of the same texts (crates/model/tests/fixtures/scoring_smollm2_q4_1.json).

Usage: openai_embeddings_check.py BASE_URL MODEL FIXTURE
"""

import base64
import json
import math
import struct
import sys

from openai import OpenAI

MIN_COSINE = 0.999


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def check(name, ours, theirs):
    assert len(ours) == len(theirs), f"{name}: {len(ours)} values, llama.cpp has {len(theirs)}"
    c = cosine(ours, theirs)
    assert c >= MIN_COSINE, f"{name}: cosine {c} to llama.cpp"
    norm = math.sqrt(sum(x * x for x in ours))
    assert abs(norm - 1.0) < 1e-3, f"{name}: not normalised ({norm})"
    return c


def main():
    base_url, model, fixture = sys.argv[1:4]
    texts = json.load(open(fixture))["texts"]
    inputs = [t["text"] for t in texts]
    prompt_tokens = sum(len(t["token_ids"]) for t in texts)
    client = OpenAI(base_url=base_url, api_key="unused")
    worst = 1.0

    # Explicit float, a list of inputs, mean pooling (the default).
    resp = client.embeddings.create(model=model, input=inputs, encoding_format="float")
    assert resp.object == "list" and resp.model == model, resp
    assert [d.index for d in resp.data] == list(range(len(texts))), resp.data
    assert resp.usage.prompt_tokens == prompt_tokens, resp.usage
    assert resp.usage.total_tokens == prompt_tokens, resp.usage
    for t, d in zip(texts, resp.data):
        worst = min(worst, check(f"{t['name']} mean float", d.embedding, t["embedding_mean"]))

    # The client's default: it asks for base64 and decodes it itself.
    resp = client.embeddings.create(model=model, input=inputs)
    for t, d in zip(texts, resp.data):
        worst = min(worst, check(f"{t['name']} mean default", list(d.embedding), t["embedding_mean"]))

    # Explicit base64: the raw little-endian f32 string; last-token pooling (Rotor's extension).
    resp = client.embeddings.create(
        model=model, input=inputs, encoding_format="base64", extra_body={"pooling": "last"}
    )
    for t, d in zip(texts, resp.data):
        raw = base64.b64decode(d.embedding)
        values = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        worst = min(worst, check(f"{t['name']} last base64", values, t["embedding_last"]))

    # One string, and the model's own dimensions accepted; others refused with a 400.
    resp = client.embeddings.create(model=model, input=inputs[0], dimensions=576)
    assert len(resp.data) == 1 and len(resp.data[0].embedding) == 576
    try:
        client.embeddings.create(model=model, input=inputs[0], dimensions=64)
        raise AssertionError("dimensions=64 was accepted")
    except Exception as e:  # openai.BadRequestError
        assert getattr(e, "status_code", None) == 400, e
        assert "576" in str(e), e

    print(f"worst cosine to llama.cpp: {worst:.6f}")
    print("all openai embeddings checks passed")


if __name__ == "__main__":
    main()
