"""A loglikelihood evaluation through lm-evaluation-harness against Rotor, checked against
llama.cpp's server on the same GGUF file.

lm-eval's `local-completions` model scores each choice of a handful of hand-written
multiple-choice items (a local task: no dataset download) through Rotor's /v1/completions with
`echo` and `logprobs`, tokenizing through Rotor's /tokenizer_info and /tokenize (its "remote"
tokenizer). The same items are scored on llama-server directly: each continuation token's
logprob from /completion's `n_probs` at that position. Rotor's choices must equal llama.cpp's
wherever llama.cpp's best two choices are more than TIE apart.

Usage: lm_eval_check.py ROTOR_URL MODEL LLAMA_URL WORKDIR
"""
import json
import math
import os
import sys
import urllib.request

rotor, model, llama, workdir = sys.argv[1:5]
TIE = 0.5  # nats: twice the per-token tolerance of the golden tests, summed over short answers

ITEMS = [
    ("The capital of France is", ["Paris", "London", "Berlin", "Madrid"], 0),
    ("The largest planet in the solar system is", ["Jupiter", "Mars", "Venus", "Mercury"], 0),
    ("Water freezes at zero degrees", ["Celsius", "Fahrenheit", "Kelvin", "Rankine"], 0),
    ("The opposite of hot is", ["cold", "warm", "tall", "green"], 0),
    ("One, two, three,", ["four", "seven", "ten", "zero"], 0),
    ("The sky on a clear day is", ["blue", "green", "red", "purple"], 0),
    ("Monday, Tuesday,", ["Wednesday", "Friday", "Sunday", "January"], 0),
    ("Cats and dogs are", ["animals", "planets", "numbers", "colors"], 0),
]


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.load(resp)


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


# --- lm-eval against Rotor -------------------------------------------------------------------
os.makedirs(workdir, exist_ok=True)
data = os.path.join(workdir, "items.jsonl")
with open(data, "w") as f:
    for question, choices, answer in ITEMS:
        f.write(json.dumps({"question": question, "choices": choices, "answer": answer}) + "\n")
with open(os.path.join(workdir, "rotor_mc.yaml"), "w") as f:
    f.write(f"""task: rotor_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: choices
doc_to_target: answer
metric_list:
  - metric: acc
""")

import lm_eval  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

results = lm_eval.simple_evaluate(
    model="local-completions",
    model_args={
        "base_url": f"{rotor}/v1/completions",
        "model": model,
        "tokenizer_backend": "remote",
        "num_concurrent": 1,
        "max_retries": 1,
    },
    tasks=["rotor_mc"],
    task_manager=TaskManager(include_path=workdir),
    log_samples=True,
)
samples = sorted(results["samples"]["rotor_mc"], key=lambda s: s["doc_id"])
if len(samples) != len(ITEMS):
    fail(f"lm-eval scored {len(samples)} items, not {len(ITEMS)}")
rotor_lls = []
for s in samples:
    lls = [float(r[0][0]) for r in s["resps"]]
    if len(lls) != 4 or not all(math.isfinite(x) and x < 0 for x in lls):
        fail(f"item {s['doc_id']}: loglikelihoods {lls}")
    rotor_lls.append(lls)
print("rotor (lm-eval):", [[round(x, 3) for x in lls] for lls in rotor_lls])
print("acc:", results["results"]["rotor_mc"].get("acc,none"))


# --- the same items on llama-server ----------------------------------------------------------
def llama_tokenize(text):
    return post(f"{llama}/tokenize", {"content": text, "add_special": False})["tokens"]


def llama_loglikelihood(context, continuation):
    # As lm-eval splits a pair: the whole text's tokens after the context's.
    whole = llama_tokenize(context + " " + continuation)
    ctx = llama_tokenize(context)
    cont = whole[len(ctx):]
    total = 0.0
    for k, token in enumerate(cont):
        out = post(f"{llama}/completion", {
            "prompt": whole[:len(ctx) + k], "n_predict": 1, "n_probs": 5000, "temperature": 0,
            "post_sampling_probs": False, "cache_prompt": False,
        })
        top = out["completion_probabilities"][0]["top_logprobs"]
        found = [t["logprob"] for t in top if t["id"] == token]
        total += found[0] if found else -100.0
    return total


compared = 0
for i, (question, choices, _) in enumerate(ITEMS):
    theirs = [llama_loglikelihood(question, c) for c in choices]
    ours = rotor_lls[i]
    best = max(range(4), key=lambda j: theirs[j])
    gap = theirs[best] - sorted(theirs)[-2]
    print(f"item {i}: llama.cpp {[round(x, 3) for x in theirs]} rotor {[round(x, 3) for x in ours]}")
    for j in range(4):
        if theirs[j] > -100 and abs(theirs[j] - ours[j]) > TIE:
            fail(f"item {i} choice {j}: rotor {ours[j]} vs llama.cpp {theirs[j]}")
    if gap > TIE:
        mine = max(range(4), key=lambda j: ours[j])
        if mine != best:
            fail(f"item {i}: rotor chose {choices[mine]!r}, llama.cpp {choices[best]!r}")
        compared += 1
if compared < len(ITEMS) // 2:
    fail(f"only {compared} items were clear enough to compare")
print(f"compared {compared} items' choices")
print("all lm-eval checks passed")
