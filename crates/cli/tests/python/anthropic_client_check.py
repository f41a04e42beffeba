#!/usr/bin/env python3
"""Drives a running Rotor server with the official `anthropic` Python client (Messages API).

Usage: anthropic_client_check.py BASE_URL MODEL API_KEY RESULTS_JSON
Exits non-zero with a message on the first failed expectation. Writes the forced tool call's
input and its tool's schema (validated by crates/cli/tests/anthropic_client.rs) and how many
/v1/messages requests were accepted to RESULTS_JSON. Run by crates/cli/tests/anthropic_client.rs.
"""
import json
import sys

import anthropic

base, model, key, results_path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=120)
sent = 0  # accepted /v1/messages requests


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def create(**kwargs):
    global sent
    r = client.messages.create(model=model, **kwargs)
    sent += 1
    return r


def text_of(message):
    return "".join(b.text for b in message.content if b.type == "text")


# This client (2.17) no longer has `temperature` among its arguments; Anthropic's API and Rotor
# still take it, so it goes in the body as an extra field.
GREEDY = {"temperature": 0}
question = [{"role": "user", "content": "What color is the sky on a clear day?"}]

# Non-streaming.
r = create(max_tokens=32, extra_body=GREEDY, messages=question)
text = text_of(r)
check(r.type == "message" and r.role == "assistant", f"a Message from the assistant: {r.type} {r.role}")
check(r.id.startswith("msg_"), f"id {r.id}")
check(r.model == model, f"model {r.model}")
check(len(r.content) == 1 and r.content[0].type == "text", f"one text block: {r.content}")
check("blue" in text.lower(), f"answer mentions blue: {text!r}")
check(r.stop_reason in ("end_turn", "max_tokens"), f"stop_reason {r.stop_reason}")
check(r.stop_sequence is None, "no stop_sequence")
check(r.usage.input_tokens > 10 and 0 < r.usage.output_tokens <= 32, f"usage {r.usage}")

# Temperature 0 (greedy) is deterministic.
again = create(max_tokens=32, extra_body=GREEDY, messages=question)
check(text_of(again) == text, f"greedy answers agree: {text_of(again)!r} vs {text!r}")

# Streaming: text_stream and the final message, equal to the non-streamed answer.
with client.messages.stream(model=model, max_tokens=32, extra_body=GREEDY, messages=question) as stream:
    pieces = list(stream.text_stream)
    final = stream.get_final_message()
sent += 1
check(len(pieces) > 3, f"streamed in {len(pieces)} text deltas")
check("".join(pieces) == text, f"stream equals non-stream: {''.join(pieces)!r} vs {text!r}")
check(text_of(final) == text and final.stop_reason == r.stop_reason, f"final message {final}")
check(final.usage.output_tokens == r.usage.output_tokens, f"stream usage {final.usage}")
check(final.usage.input_tokens == r.usage.input_tokens, f"stream input tokens {final.usage}")

# Raw events in Anthropic's order.
names = []
with client.messages.stream(model=model, max_tokens=8, extra_body=GREEDY, messages=question) as stream:
    for event in stream:
        names.append(event.type)
sent += 1
check(names[0] == "message_start" and names[-1] == "message_stop", f"event order: {names}")
check("content_block_start" in names and "content_block_stop" in names and "message_delta" in names,
      f"block and delta events: {names}")

# max_tokens.
r5 = create(max_tokens=5, extra_body=GREEDY, messages=question)
check(r5.stop_reason == "max_tokens" and r5.usage.output_tokens == 5, f"max_tokens=5: {r5.stop_reason} {r5.usage}")

# Stop sequences: a word of the greedy answer ends it there.
words = [w for w in text.split() if w.isalpha() and len(w) > 2]
check(len(words) >= 2, f"the answer has words to stop at: {text!r}")
stop_word = words[1]
rs = create(max_tokens=32, extra_body=GREEDY, messages=question, stop_sequences=["qqqq", stop_word])
check(rs.stop_reason == "stop_sequence", f"stop_reason {rs.stop_reason}")
check(rs.stop_sequence == stop_word, f"stop_sequence {rs.stop_sequence!r} == {stop_word!r}")
check(text_of(rs) == text[: text.index(stop_word)], f"text before the stop: {text_of(rs)!r}")
with client.messages.stream(model=model, max_tokens=32, extra_body=GREEDY, messages=question,
                            stop_sequences=[stop_word]) as stream:
    streamed_stop = stream.get_final_message()
sent += 1
check(streamed_stop.stop_reason == "stop_sequence" and streamed_stop.stop_sequence == stop_word,
      f"streamed stop: {streamed_stop.stop_reason} {streamed_stop.stop_sequence!r}")

# System prompt, as a string and as text blocks; count_tokens agrees with usage.
system = "You are a pirate. Answer like a pirate."
rsys = create(max_tokens=24, extra_body=GREEDY, system=system, messages=question)
# SmolLM2's template adds its own system prompt when there is none: compare with longer ones.
longer = client.messages.count_tokens(model=model, system=system + " Never say the word blue.", messages=question)
check(longer.input_tokens > rsys.usage.input_tokens + 3, f"the system prompt is in the prompt: {rsys.usage} {longer}")
blocks = create(max_tokens=24, extra_body=GREEDY, messages=question,
                system=[{"type": "text", "text": "You are a pirate."}, {"type": "text", "text": "Answer like a pirate."}])
check(abs(blocks.usage.input_tokens - rsys.usage.input_tokens) <= 2, f"system blocks are in the prompt: {blocks.usage}")
counted = client.messages.count_tokens(model=model, messages=question,
                                       system=[{"type": "text", "text": "You are a pirate."},
                                               {"type": "text", "text": "Answer like a pirate."}])
check(counted.input_tokens == blocks.usage.input_tokens, f"count_tokens with system blocks {counted.input_tokens}")
counted = client.messages.count_tokens(model=model, system=system, messages=question)
check(counted.input_tokens == rsys.usage.input_tokens, f"count_tokens {counted.input_tokens} == {rsys.usage.input_tokens}")
counted = client.messages.count_tokens(model=model, messages=question)
check(counted.input_tokens == r.usage.input_tokens, f"count_tokens without system {counted.input_tokens}")

# Multi-turn.
turns = [
    {"role": "user", "content": "My name is Ada."},
    {"role": "assistant", "content": [{"type": "text", "text": "Nice to meet you, Ada!"}]},
    {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
]
rm = create(max_tokens=24, extra_body=GREEDY, messages=turns)
check(len(text_of(rm)) > 0, f"multi-turn answer: {text_of(rm)!r}")
counted = client.messages.count_tokens(model=model, messages=turns)
check(counted.input_tokens == rm.usage.input_tokens, f"multi-turn count_tokens {counted.input_tokens}")

# Errors.
try:
    client.messages.create(model="no-such-model", max_tokens=8, messages=question)
    check(False, "unknown model must fail")
except anthropic.NotFoundError as e:
    check(e.status_code == 404 and e.body["error"]["type"] == "not_found_error", f"unknown model: {e.body}")
try:
    client.messages.create(model=model, max_tokens=0, messages=question)
    check(False, "max_tokens=0 must fail")
except anthropic.BadRequestError as e:
    check(e.body["type"] == "error" and e.body["error"]["type"] == "invalid_request_error", f"bad request: {e.body}")
wrong_key = anthropic.Anthropic(base_url=base, api_key="sk-ant-wrong", max_retries=0, timeout=30)
try:
    wrong_key.messages.create(model=model, max_tokens=8, messages=question)
    check(False, "a wrong key must fail")
except anthropic.AuthenticationError as e:
    check(e.body["error"]["type"] == "authentication_error", f"wrong key: {e.body}")

# A forced tool call: tool_choice {type: tool, name}.
schema = {"type": "object", "properties": {
    "city": {"type": "string", "description": "City name", "maxLength": 40},
    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"], "additionalProperties": False}
tools = [
    {"name": "get_weather", "description": "Current weather in a city.", "input_schema": schema},
    {"name": "get_time", "description": "Current time in a timezone.",
     "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}},
]
# One call: disable_parallel_tool_use limits the forced grammar to a single call.
FORCED = {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
weather = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]
rt = create(max_tokens=128, extra_body=GREEDY, tools=tools, messages=weather,
            tool_choice=FORCED)
uses = [b for b in rt.content if b.type == "tool_use"]
check(len(uses) == 1, f"one tool_use block: {rt.content}")
use = uses[0]
check(use.name == "get_weather", f"the named tool: {use.name}")
check(use.id.startswith("toolu_"), f"tool_use id {use.id}")
check(isinstance(use.input, dict) and isinstance(use.input.get("city"), str), f"input {use.input}")
check(use.input.get("unit") in ("celsius", "fahrenheit"), f"unit {use.input}")
check(rt.stop_reason == "tool_use", f"stop_reason {rt.stop_reason}")
with client.messages.stream(model=model, max_tokens=128, extra_body=GREEDY, tools=tools, messages=weather,
                            tool_choice=FORCED) as stream:
    streamed_tool = stream.get_final_message()
sent += 1
streamed_uses = [b for b in streamed_tool.content if b.type == "tool_use"]
check(len(streamed_uses) == 1 and streamed_uses[0].input == use.input,
      f"streamed tool_use input equals the whole one: {streamed_tool.content}")
check(streamed_tool.stop_reason == "tool_use", f"streamed stop_reason {streamed_tool.stop_reason}")

# The result goes back; the model answers (tool_choice auto).
follow = weather + [
    {"role": "assistant", "content": [b.model_dump() for b in rt.content]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C and sunny"}]},
]
rf = create(max_tokens=32, extra_body=GREEDY, tools=tools, messages=follow)
check(rf.stop_reason in ("end_turn", "max_tokens", "tool_use"), f"follow-up stop_reason {rf.stop_reason}")
check(rf.usage.input_tokens > rt.usage.input_tokens, f"the call and its result are in the prompt: {rf.usage}")

with open(results_path, "w") as f:
    json.dump({"schema": schema, "input": use.input, "messages_sent": sent}, f)
print("all anthropic client checks passed")
