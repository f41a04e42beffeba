#!/usr/bin/env python3
"""Tool calling, reasoning-free structured outputs and streaming tool calls through the official
`openai` Python client against a running `rotor serve`.

Usage: openai_tools_check.py BASE_URL MODEL RESULTS_JSON [SCHEMAS_JSON]
With SCHEMAS_JSON (crates/engine/tests/fixtures/schemas.json: name, prompt, schema), every schema
is also asked for with response_format json_schema (strict), eight requests at a time.
Checks the shapes here; writes every call's arguments and every json_schema answer to
RESULTS_JSON, where crates/cli/tests/tools_structured.rs validates them against their schemas
(with the `jsonschema` crate). Exits non-zero with a message on the first failed expectation.
"""
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import openai

base, model, results_path = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=300)

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name", "maxLength": 40},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "book_flight", "description": "Book a flight.",
        "parameters": {"type": "object", "properties": {
            "origin": {"type": "string", "maxLength": 40}, "destination": {"type": "string", "maxLength": 40},
            "passengers": {"type": "integer", "minimum": 1, "maximum": 9}},
            "required": ["origin", "destination", "passengers"], "additionalProperties": False}}},
]
SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 40}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "colors": {"type": "array", "items": {"type": "string", "enum": ["red", "green", "blue"]},
               "minItems": 1, "maxItems": 3}},
    "required": ["name", "age", "colors"], "additionalProperties": False}

results = {"calls": [], "documents": [], "schema": SCHEMA,
           "tools": {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}}


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


weather = [{"role": "user", "content": "What is the weather like in Paris today?"}]

# tool_choice "required": the answer is calls, and nothing else.
r = client.chat.completions.create(model=model, messages=weather, tools=TOOLS, tool_choice="required",
                                   max_tokens=200, temperature=0)
choice = r.choices[0]
calls = choice.message.tool_calls or []
check(choice.finish_reason == "tool_calls", f"required: finish_reason tool_calls, got {choice.finish_reason}")
check(len(calls) >= 1, f"required: at least one call: {choice.message}")
check(choice.message.content is None, f"required: content is null: {choice.message.content!r}")
for call in calls:
    check(call.id.startswith("call_") and call.type == "function", f"call id and type: {call.id} {call.type}")
    check(call.function.name in results["tools"], f"known function: {call.function.name}")
    results["calls"].append({"name": call.function.name, "arguments": call.function.arguments})

# Streaming the same request reassembles to the same calls (greedy).
stream = client.chat.completions.create(model=model, messages=weather, tools=TOOLS, tool_choice="required",
                                        max_tokens=200, temperature=0, stream=True)
streamed, finish = {}, None
for chunk in stream:
    if not chunk.choices:
        continue
    delta = chunk.choices[0].delta
    check(not (delta.content or "").strip().startswith("<tool_call>"), "no markup in streamed content")
    for tc in delta.tool_calls or []:
        entry = streamed.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
        if tc.id:
            check(entry["id"] is None, "a call's id comes once")
            entry["id"], entry["name"] = tc.id, tc.function.name
        entry["arguments"] += tc.function.arguments or ""
    if chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
check(finish == "tool_calls", f"streamed finish_reason tool_calls, got {finish}")
check([(c["name"], c["arguments"]) for _, c in sorted(streamed.items())]
      == [(c.function.name, c.function.arguments) for c in calls],
      f"streamed calls reassemble to the whole answer: {streamed}")

# A named function, no parallel calls: exactly one call of it.
flight = [{"role": "user", "content": "Book me a flight from Berlin to Rome for two people."}]
r = client.chat.completions.create(model=model, messages=flight, tools=TOOLS,
                                   tool_choice={"type": "function", "function": {"name": "book_flight"}},
                                   parallel_tool_calls=False, max_tokens=200, temperature=0)
calls = r.choices[0].message.tool_calls or []
check(len(calls) == 1 and calls[0].function.name == "book_flight", f"named: one book_flight call: {calls}")
results["calls"].append({"name": calls[0].function.name, "arguments": calls[0].function.arguments})

# A conversation with the call and its result goes back through the template.
history = flight + [
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": calls[0].id, "type": "function",
         "function": {"name": "book_flight", "arguments": calls[0].function.arguments}}]},
    {"role": "tool", "tool_call_id": calls[0].id, "content": "Booked: confirmation RX42."}]
r = client.chat.completions.create(model=model, messages=history, tools=TOOLS, tool_choice="none",
                                   max_tokens=40, temperature=0)
check(r.choices[0].message.content, f"answer after the tool result: {r.choices[0].message.content!r}")

# response_format json_schema: the content is JSON (validated against SCHEMA by the Rust side).
person = [{"role": "user", "content": "Describe a person named Ada who likes two colors, as JSON."}]
for strict in (True, False):
    r = client.chat.completions.create(
        model=model, messages=person, max_tokens=200, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": strict}})
    content = r.choices[0].message.content
    check(r.choices[0].finish_reason == "stop", f"json_schema: finished, got {r.choices[0].finish_reason}")
    results["documents"].append(content)

# json_object
r = client.chat.completions.create(model=model, messages=person, max_tokens=300, temperature=0,
                                   response_format={"type": "json_object"})
text = r.choices[0].message.content
if r.choices[0].finish_reason == "stop":
    check(isinstance(json.loads(text), dict), f"json_object gives an object: {text!r}")
else:  # cut by max_tokens: still the start of an object
    check(text.lstrip().startswith("{"), f"json_object output starts an object: {text!r}")

# vLLM's guided_choice through extra_body.
r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Is the sky blue?"}],
                                   max_tokens=10, temperature=0, extra_body={"guided_choice": ["yes", "no"]})
check(r.choices[0].message.content in ("yes", "no"), f"guided_choice: {r.choices[0].message.content!r}")

# Bad input: a named function that is not among the tools.
try:
    client.chat.completions.create(model=model, messages=weather, tools=TOOLS,
                                   tool_choice={"type": "function", "function": {"name": "launch_rocket"}})
    check(False, "unknown function in tool_choice is refused")
except openai.BadRequestError as err:
    check("launch_rocket" in str(err), f"400 names the function: {err}")

# The schema suite: each fixture's prompt with its schema enforced; the Rust side validates.
if len(sys.argv) > 4:
    with open(sys.argv[4]) as f:
        suite = json.load(f)

    def ask(fixture):
        r = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": fixture["prompt"]}], max_tokens=256,
            temperature=0, response_format={"type": "json_schema", "json_schema": {
                "name": fixture["name"], "schema": fixture["schema"], "strict": True}})
        return {"name": fixture["name"], "schema": fixture["schema"],
                "content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason}

    with ThreadPoolExecutor(8) as pool:
        results["suite"] = list(pool.map(ask, suite))
    check(len(results["suite"]) == len(suite), f"{len(suite)} schema answers")

with open(results_path, "w") as f:
    json.dump(results, f)
print("all openai tool checks passed")
