#!/usr/bin/env python3
"""The six OpenResponses compliance scenarios (basic response, streaming, system prompt, tool
calling, image input, multi-turn) against a running Rotor server, every body and every streamed
event validated against a schema Rotor did not write: the official `openai` Python package's
pydantic models of the Responses API (`openai.types.responses.Response` and the
`ResponseStreamEvent` union, discriminated by `type`), in pydantic's strict mode.

The OpenResponses project's own runner cannot run here: it is published on neither npm nor
PyPI (only in its GitHub repository, which this machine cannot reach), and its code may not be
copied into Rotor. Its Zod schemas follow the same Responses API resource and event shapes that
the `openai` package models; this script sends the same kinds of requests, over raw HTTP so the
exact bytes are validated, not a client's lenient parse of them.

Image input: Rotor's served models read text only, so an `input_image` part is answered 400 in
OpenAI's error shape naming the part; that is what this script requires (not silent dropping).

Usage: openresponses_scenarios_check.py BASE_URL MODEL
Exits non-zero with a message on the first failed expectation. Run by
crates/cli/tests/responses_api.rs.
"""
import json
import sys
import urllib.error
import urllib.request

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter, ValidationError

base, model = sys.argv[1].rstrip("/"), sys.argv[2]
EVENT = TypeAdapter(ResponseStreamEvent)


class Reply:
    """An HTTP answer: status, content type, and the body or its lines."""

    def __init__(self, raw):
        self.raw = raw
        self.status_code = raw.status
        self.content_type = raw.headers.get("content-type", "")

    def json(self):
        return json.loads(self.raw.read())

    def lines(self):
        for line in self.raw:
            yield line.decode("utf-8").rstrip("\r\n")


def request(method, path, payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        return Reply(urllib.request.urlopen(req, timeout=120))
    except urllib.error.HTTPError as e:
        return Reply(e)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def validated_response(body, what):
    """The response resource, strictly validated by the openai package's model."""
    try:
        r = Response.model_validate(body, strict=True)
    except ValidationError as e:
        check(False, f"{what}: the response resource fails the openai schema:\n{e}\n{json.dumps(body)[:2000]}")
    # Fields the OpenResponses resource requires that the openai model leaves optional.
    required = ("id", "object", "created_at", "status", "model", "output", "usage", "tools",
                "tool_choice", "parallel_tool_calls", "text", "truncation", "store", "metadata",
                "temperature", "top_p", "incomplete_details", "error", "previous_response_id",
                "instructions", "max_output_tokens", "reasoning")
    missing = [field for field in required if field not in body]
    check(not missing, f"{what}: the resource is valid and has every required field (missing: {missing})")
    check(body["object"] == "response", f"{what}: object is response")
    return r


def create(what, payload):
    resp = request("POST", "/responses", {"model": model, **payload})
    body = resp.json()
    check(resp.status_code == 200, f"{what}: HTTP 200" + ("" if resp.status_code == 200 else f" (got {resp.status_code}: {body})"))
    check(resp.content_type.startswith("application/json"), f"{what}: JSON body")
    return validated_response(body, what)


def message_texts(r):
    return ["".join(part.text for part in item.content if part.type == "output_text")
            for item in r.output if item.type == "message"]


# 1. Basic response.
basic = create("basic-response", {
    "input": [{"type": "message", "role": "user", "content": "Say hello in exactly 3 words."}],
    "max_output_tokens": 300, "temperature": 0})
check(basic.status == "completed", f"basic-response: completed ({basic.status})")
texts = message_texts(basic)
check(len(texts) == 1 and texts[0].strip(), f"basic-response: one message with text {texts!r}")
check(basic.usage.input_tokens > 0 and basic.usage.output_tokens > 0, f"basic-response: usage {basic.usage}")
# Prompt caching in usage: what the first request wrote to the prefix cache, the same request
# again reads from it (and writes nothing).
written = basic.usage.input_tokens_details.cache_write_tokens
check(written > 0 and written <= basic.usage.input_tokens, f"basic-response: {written} prompt tokens written to the cache")
again = create("basic-response (again)", {
    "input": [{"type": "message", "role": "user", "content": "Say hello in exactly 3 words."}],
    "max_output_tokens": 300, "temperature": 0})
details = again.usage.input_tokens_details
check(details.cached_tokens == written and details.cache_write_tokens == 0,
      f"basic-response again: reads the {written} written tokens from the cache ({details})")

# 2. Streaming: every SSE frame is `event: <type>` + `data: <event JSON>`, each event valid,
# in order, ending with response.completed whose response is itself valid and equals the
# deltas.
def stream(what, payload):
    """POSTs `payload` with `stream: true`; every SSE frame's `event:` must name its data's
    `type` and every event must validate. Returns the events (and "[DONE]" if sent)."""
    events = []
    resp = request("POST", "/responses", {"model": model, "stream": True, **payload})
    check(resp.status_code == 200, f"{what}: HTTP 200 ({resp.status_code})")
    check(resp.content_type.startswith("text/event-stream"), f"{what}: SSE")
    name = None
    for line in resp.lines():
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data = line[len("data: "):]
            if data == "[DONE]":
                events.append("[DONE]")
                continue
            raw = json.loads(data)
            if name != raw.get("type"):
                check(False, f"{what}: SSE event name {name} is not the data's type {raw.get('type')}")
            try:
                event = EVENT.validate_python(raw, strict=True)
            except ValidationError as e:
                check(False, f"{what}: event fails the openai schema:\n{e}\n{data[:1000]}")
            events.append(event)
            if event.type in ("response.created", "response.in_progress", "response.completed",
                              "response.incomplete"):
                validated_response(raw["response"], f"{what} {event.type}")
            name = None
    return events


events = stream("streaming-response", {
    "temperature": 0, "max_output_tokens": 300,
    "input": [{"type": "message", "role": "user", "content": "Count from 1 to 5."}]})
typed = [e for e in events if e != "[DONE]"]
check(len(typed) >= 6, f"streaming-response: {len(typed)} events, each valid, named by its type")
check([e.sequence_number for e in typed] == list(range(len(typed))), "streaming-response: sequence numbers 0..")
check(typed[0].type == "response.created" and typed[-1].type == "response.completed",
      f"streaming-response: created first, completed last ({typed[0].type}, {typed[-1].type})")
check(events[-1] != "[DONE]" or len(events) == len(typed) + 1, "streaming-response: at most one [DONE], last")
deltas = "".join(e.delta for e in typed if e.type == "response.output_text.delta")
done = [e.text for e in typed if e.type == "response.output_text.done"]
check(deltas and done == [deltas], "streaming-response: output_text.done holds the joined deltas")
check(message_texts(typed[-1].response) == [deltas], "streaming-response: the completed response holds the text")
item_ids = {e.item_id for e in typed if e.type == "response.output_text.delta"}
added = [e.item.id for e in typed if e.type == "response.output_item.added"]
check(len(item_ids) == 1 and item_ids <= set(added), "streaming-response: deltas name the added item")

# 3. System prompt: a system message in the input steers the answer.
system = create("system-prompt", {
    "input": [{"type": "message", "role": "system", "content": "You are a pirate. Always respond in pirate speak."},
              {"type": "message", "role": "user", "content": "Say hello."}],
    "max_output_tokens": 300, "temperature": 0})
# Greedy decoding of a 135M model may loop in pirate speak until the budget ends: incomplete
# (max_output_tokens) is a right answer for that; what the scenario is about is that the
# system message steers it.
check(system.status == "completed" or system.incomplete_details.reason == "max_output_tokens",
      f"system-prompt: completed or cut by the budget ({system.status})")
pirate = message_texts(system)[0].lower()
check(any(word in pirate for word in ("ahoy", "aye", "arr", "matey", "pirate")),
      f"system-prompt: answers in pirate speak: {pirate[:200]!r}")
plain = create("system-prompt (without)", {
    "input": [{"type": "message", "role": "user", "content": "Say hello."}],
    "max_output_tokens": 300, "temperature": 0})
plain_text = message_texts(plain)[0].lower()
check(not any(word in plain_text for word in ("ahoy", "aye", "arr", "matey", "pirate")),
      f"system-prompt: without it the answer is not pirate speak: {plain_text[:200]!r}")

# 4. Tool calling: a function tool; the model must call it (tool_choice required: a 135M model
# left to decide may answer in prose, which the suite would count as a failure of the server).
tools = [{"type": "function", "name": "get_weather", "description": "Get the current weather for a location",
          "parameters": {"type": "object", "properties": {"location": {"type": "string",
                         "description": "The city and state, e.g. San Francisco, CA"}},
                         "required": ["location"]}}]
tool = create("tool-calling", {
    "input": [{"type": "message", "role": "user", "content": "What's the weather like in San Francisco?"}],
    "tools": tools, "tool_choice": "required", "max_output_tokens": 80, "temperature": 0})
calls = [item for item in tool.output if item.type == "function_call"]
check(len(calls) >= 1 and calls[0].name == "get_weather", f"tool-calling: a get_weather call ({tool.output})")
check(isinstance(json.loads(calls[0].arguments).get("location"), str), "tool-calling: JSON arguments with a location")
check(len(tool.tools) == 1 and tool.tools[0].name == "get_weather", "tool-calling: the tool is echoed")
tool_events = [e for e in stream("tool-calling (streamed)", {
    "input": [{"type": "message", "role": "user", "content": "What's the weather like in San Francisco?"}],
    "tools": tools, "tool_choice": "required", "max_output_tokens": 80, "temperature": 0}) if e != "[DONE]"]
arg_deltas = "".join(e.delta for e in tool_events if e.type == "response.function_call_arguments.delta")
arg_done = [e.arguments for e in tool_events if e.type == "response.function_call_arguments.done"]
streamed_calls = [item for item in tool_events[-1].response.output if item.type == "function_call"]
check(tool_events[-1].type == "response.completed" and streamed_calls and arg_done
      and arg_done[0] == streamed_calls[0].arguments,
      f"tool-calling (streamed): argument events rebuild the call {arg_done} / {arg_deltas!r}")
check(arg_done[0] == calls[0].arguments, "tool-calling (streamed): the same call as without streaming")

# 5. Image input: refused with OpenAI's error shape, naming the part (a text-only model).
resp = request("POST", "/responses", {"model": model, "input": [{"type": "message", "role": "user", "content": [
    {"type": "input_text", "text": "What do you see in this image?"},
    {"type": "input_image", "image_url": "https://example.com/cat.png"}]}]})
err = resp.json()
check(resp.status_code == 400, f"image-input: 400 for a text-only model ({resp.status_code})")
check(set(err) == {"error"} and {"message", "type", "param", "code"} <= set(err["error"]),
      f"image-input: OpenAI error JSON {err}")
check(err["error"]["param"] == "input[0].content[1]", f"image-input: names the part ({err['error']['param']})")

# 6. Multi-turn: earlier turns as input items.
multi = create("multi-turn", {
    "input": [{"type": "message", "role": "user", "content": "My name is Alice."},
              {"type": "message", "role": "assistant", "content": "Hello Alice! Nice to meet you. How can I help you today?"},
              {"type": "message", "role": "user", "content": "What is my name?"}],
    "max_output_tokens": 300, "temperature": 0})
check(multi.status == "completed", f"multi-turn: completed ({multi.status})")
last_alone = create("multi-turn (last turn alone)", {
    "input": [{"type": "message", "role": "user", "content": "What is my name?"}],
    "max_output_tokens": 8, "temperature": 0})
# The earlier turns are in the prompt: about 25 more tokens (two turns and their markup). What
# the 135M model answers about the name is not the server's to guarantee.
check(multi.usage.input_tokens >= last_alone.usage.input_tokens + 20,
      f"multi-turn: the earlier turns are in the prompt ({multi.usage.input_tokens} vs "
      f"{last_alone.usage.input_tokens} tokens for the last turn alone)")

# Stored responses come back valid too.
got = request("GET", f"/responses/{multi.id}")
check(got.status_code == 200, "retrieve: 200")
validated_response(got.json(), "retrieve")

print("all openresponses scenario checks passed")
