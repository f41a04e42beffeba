#!/usr/bin/env python3
"""Drives a running Rotor server's Responses API (/v1/responses) with the official `openai`
Python client: create (text and message-list input), instructions, streaming (raw events and
the client's `responses.stream` helper), previous_response_id, retrieve and delete,
max_output_tokens -> incomplete, and a forced function call.

Usage: openai_responses_check.py BASE_URL MODEL
Exits non-zero with a message on the first failed expectation. Run by
crates/cli/tests/responses_api.rs.
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
    print(f"ok: {what}")


# String input.
r = client.responses.create(model=model, input="What color is the sky on a clear day?",
                            max_output_tokens=40, temperature=0)
check(r.object == "response" and r.id.startswith("resp_"), f"response object {r.id}")
check(r.status in ("completed", "incomplete"), f"status {r.status}")
check(r.output[0].type == "message" and r.output[0].role == "assistant", f"message item {r.output[0]}")
text = r.output_text
check("blue" in text.lower(), f"answer mentions blue: {text!r}")
check(r.usage.input_tokens > 10 and r.usage.output_tokens > 0, f"usage {r.usage}")
check(r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens, "total = input + output")

# A message list with content parts gives the same greedy answer as the string.
same = client.responses.create(
    model=model, max_output_tokens=40, temperature=0,
    input=[{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "What color is the sky on a clear day?"}]}])
check(same.output_text == text, f"message-list input answers the same: {same.output_text!r}")

# Instructions are a system message: they change the prompt.
instructed = client.responses.create(model=model, input="What color is the sky on a clear day?",
                                     instructions="You are a pirate. Always answer in pirate speak.",
                                     max_output_tokens=40, temperature=0)
check(instructed.instructions.startswith("You are a pirate"), "instructions echoed")
check(instructed.usage.input_tokens != r.usage.input_tokens, "instructions change the prompt")
check(len(instructed.output_text) > 0, f"instructed answer: {instructed.output_text!r}")

# Streaming, raw events: the Responses event order and sequence numbers.
events = list(client.responses.create(model=model, input="What color is the sky on a clear day?",
                                      max_output_tokens=40, temperature=0, stream=True))
types = [e.type for e in events]
check([e.sequence_number for e in events] == list(range(len(events))), "sequence numbers count from 0")
check(types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                    "response.content_part.added"], f"stream opens in order: {types[:4]}")
ending = "response.completed" if r.status == "completed" else "response.incomplete"
check(types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                     ending], f"stream closes in order: {types[-4:]}")
deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
check(len(deltas) > 3 and set(types[4:-4]) == {"response.output_text.delta"}, f"{len(deltas)} deltas")
check("".join(deltas) == text, f"greedy stream equals non-stream: {''.join(deltas)!r}")
check(events[-1].response.output_text == text, "the last event carries the whole response")

# Streaming with the client's helper, which checks item identities as it accumulates (and
# wants `response.completed`: the answer must end by itself, so the budget is ample).
short = client.responses.create(model=model, input="What is 2+2?", max_output_tokens=300,
                                temperature=0)
check(short.status == "completed", f"a short answer completes: {short.output_text!r}")
with client.responses.stream(model=model, input="What is 2+2?",
                             max_output_tokens=300, temperature=0) as stream:
    helper_types = [event.type for event in stream]
    final = stream.get_final_response()
check("response.output_text.delta" in helper_types, "helper stream yields text deltas")
check(helper_types[-1] == "response.completed", f"helper stream ends completed: {helper_types[-1]}")
check(final.output_text == short.output_text, f"helper final response: {final.output_text!r}")

# previous_response_id: the stored turn comes before the new input.
first = client.responses.create(model=model, input="My name is Alice. Please remember it.",
                                max_output_tokens=24, temperature=0)
second = client.responses.create(model=model, input="What is my name?", previous_response_id=first.id,
                                 max_output_tokens=24, temperature=0)
alone = client.responses.create(model=model, input="What is my name?", max_output_tokens=24, temperature=0)
check(second.previous_response_id == first.id, "previous_response_id echoed")
check(second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens,
      f"chained prompt holds the first turn: {second.usage.input_tokens} vs {alone.usage.input_tokens}")
check("alice" in second.output_text.lower(), f"the model remembers the name: {second.output_text!r}")

# Retrieve and delete.
got = client.responses.retrieve(first.id)
check(got.id == first.id and got.output_text == first.output_text, "retrieve returns the stored response")
client.responses.delete(first.id)
try:
    client.responses.retrieve(first.id)
    check(False, "retrieve after delete raises NotFoundError")
except openai.NotFoundError:
    check(True, "retrieve after delete raises NotFoundError")
unstored = client.responses.create(model=model, input="Hi", store=False, max_output_tokens=4)
try:
    client.responses.retrieve(unstored.id)
    check(False, "store=False is not retrievable")
except openai.NotFoundError:
    check(True, "store=False is not retrievable")

# max_output_tokens cuts the answer: incomplete.
cut = client.responses.create(model=model, input="Write a long story about the sea.", max_output_tokens=5,
                              temperature=0)
check(cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens",
      f"max_output_tokens=5 is incomplete: {cut.status} {cut.incomplete_details}")
check(cut.usage.output_tokens == 5, f"5 output tokens: {cut.usage}")

# A forced function call.
tools = [{"type": "function", "name": "get_weather", "description": "Current weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}},
                         "required": ["city"], "additionalProperties": False}}]
call = client.responses.create(model=model, input="What is the weather in Paris?", tools=tools,
                               tool_choice={"type": "function", "name": "get_weather"},
                               max_output_tokens=60, temperature=0)
calls = [item for item in call.output if item.type == "function_call"]
check(len(calls) == 1 and calls[0].name == "get_weather", f"one get_weather call: {call.output}")
args = json.loads(calls[0].arguments)
check(isinstance(args.get("city"), str), f"arguments are JSON with a city: {args}")
check(calls[0].call_id.startswith("call_"), f"call_id {calls[0].call_id}")

# Its result goes back as a function_call_output item.
answer = client.responses.create(model=model, previous_response_id=call.id, tools=tools,
                                 input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                                         "output": "18 C and sunny"}],
                                 max_output_tokens=40, temperature=0)
check(answer.status in ("completed", "incomplete") and len(answer.output) > 0,
      f"answer after the tool result: {answer.output}")

print("all openai responses checks passed")
