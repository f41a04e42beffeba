#!/usr/bin/env python3
"""Records how transformers renders chat templates with tools, for crates/text's tests.

Writes crates/text/tests/fixtures/chat_template_tool_renders.json: Qwen 2.5's official template
(crates/text/tests/fixtures/chat_templates/qwen2.5.jinja) rendered by jinja2 in transformers'
sandbox with `tools`, assistant `tool_calls` and `tool` messages. Rotor receives OpenAI messages,
whose `function.arguments` is JSON text; transformers users (and vLLM, before rendering) pass
it as an object, so the fixture keeps both: `messages` (OpenAI form, what Rotor gets) and the
rendering of the parsed form. Run with any python3 that has jinja2:

    /work/refenv/bin/python scripts/golden/tool_template_renders.py
"""
import copy
import json
import os
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.sandbox

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "crates", "text", "tests", "fixtures")

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a time zone (ünïcode ok).",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}

CASES = [
    ("tools_first_turn", [
        {"role": "user", "content": "What's the weather in Paris?"}], [WEATHER, TIME], True),
    ("tools_with_system", [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Time in Tokyo?"}], [TIME], True),
    ("tool_call_round_trip", [
        {"role": "user", "content": "Weather in Paris and time in Tokyo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a1", "type": "function", "function": {
                "name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}},
            {"id": "call_b2", "type": "function", "function": {
                "name": "get_time", "arguments": "{\"tz\": \"Asia/Tokyo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_a1", "content": "18 C, cloudy"},
        {"role": "tool", "tool_call_id": "call_b2", "content": "21:04"},
    ], [WEATHER, TIME], True),
    ("tool_call_with_text_no_tools", [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_c3", "type": "function", "function": {
                "name": "get_weather", "arguments": "{\"city\": \"Zürich\"}"}}]},
        {"role": "tool", "tool_call_id": "call_c3", "content": "{\"temp\": 12}"},
        {"role": "assistant", "content": "12 degrees."},
    ], None, False),
]


def hf_environment() -> jinja2.Environment:
    """transformers' chat-template sandbox (apply_chat_template)."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def parsed(messages):
    """The messages as vLLM hands them to transformers: arguments parsed into objects."""
    out = copy.deepcopy(messages)
    for message in out:
        for call in message.get("tool_calls") or []:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return out


def main() -> None:
    name = "qwen2.5.jinja"
    source = open(os.path.join(FIXTURES, "chat_templates", name)).read()
    template = hf_environment().from_string(source)
    renders = []
    for case, messages, tools, add_generation_prompt in CASES:
        text = template.render(messages=parsed(messages), tools=tools,
                               add_generation_prompt=add_generation_prompt,
                               bos_token="", eos_token="<|im_end|>")
        renders.append({"template": name, "case": case, "bos_token": "", "eos_token": "<|im_end|>",
                        "messages": messages, "tools": tools,
                        "add_generation_prompt": add_generation_prompt, "rendered": text})
    path = os.path.join(FIXTURES, "chat_template_tool_renders.json")
    with open(path, "w") as f:
        json.dump({"generator": f"jinja2 {jinja2.__version__}", "renders": renders}, f, indent=1,
                  ensure_ascii=False)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
