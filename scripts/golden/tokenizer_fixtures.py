#!/usr/bin/env python3
"""Regenerate rotor-text's tokenizer and chat-template fixtures for Gemma 3 and Qwen 2 with
llama.cpp (through llama-cpp-python) and jinja2, implementations independent of ours.

Writes:
  crates/text/tests/fixtures/tokenizer_qwen2_gguf.json   the metadata of a GGUF holding only a
                                                         Qwen2-style tokenizer (the tests write the
                                                         GGUF from it; no model file is committed):
                                                         a small byte-level BPE trained here on
                                                         CORPUS, pre-tokenizer "qwen2", ChatML
                                                         specials and Qwen 2.5's chat template
  crates/text/tests/fixtures/tokenizer_qwen2.json        llama.cpp ids for that GGUF
  crates/text/tests/fixtures/tokenizer_gemma3.json       llama.cpp ids for the real Gemma 3 270M
                                                         GGUF's SentencePiece vocabulary
  crates/text/tests/fixtures/chat_template_renders.json  Gemma 3's and Qwen 2.5's official templates
                                                         (fixtures/chat_templates/*.jinja) rendered
                                                         by jinja2 the way transformers does

Each id list is recorded twice: parsing special tokens (special=True) and not (special=False);
neither adds BOS. The rendered chat prompts are tokenized too.

Usage (from the repo root, in the venv described in gen_fixtures.py, plus `pip install gguf`):
  /tmp/refenv/bin/python scripts/golden/tokenizer_fixtures.py [path/to/gemma-3-270m-q4_k_m.gguf]
"""
import collections
import hashlib
import json
import os
import re
import sys
import tempfile
from datetime import datetime

import gguf
import jinja2
import jinja2.ext
import jinja2.sandbox
import llama_cpp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import TEXTS  # noqa: E402  (the SmolLM2 strings, reused)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "crates/text/tests/fixtures")
DEFAULT_GEMMA = os.path.expanduser("~/.cache/rotor/models/gemma-3-270m-q4_k_m.gguf")

# Strings beyond TEXTS that stress each tokenizer: contractions in both cases, digit runs, CJK,
# punctuation runs before newlines, whitespace runs, text that looks like byte tokens.
EXTRA_TEXTS = [
    "I'M SURE YOU'RE RIGHT, WE'LL SEE. It's, isn't it? They've, she'd",
    "1234567890 + 2024 = 12 x 3.5%",
    "中文分词测试：我们在北京。日本語とカタカナ、한국어!",
    "Wait...!!!\n\n???\r\n--- ok ---\n",
    "\n\n\n  \t  \n    four spaces\n        eight\n\t\ttwo tabs",
    " leading space, double  space,   triple",
    "<0x41> and <0x0A> are not bytes here; \u2581 is a lower one eighth block",
    "Ünïcödé 🦀 <end_of_turn> <|im_end|> </s> <s>",
]

GEMMA_SPECIAL = "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<bos>x<eos>"
QWEN_SPECIAL = "<|im_start|>system\nBe brief.<|im_end|>\n<tool_call>{\"a\": 1}</tool_call><|endoftext|>"

CONVERSATIONS = [
    ("multi_turn_with_system", [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi there!"},
        {"role": "assistant", "content": "  Hello. How can I help?  "},
        {"role": "user", "content": "Name three colors, in 中文 too.\n"},
    ], True),
    ("user_only_without_generation_prompt", [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
    ], False),
]
QWEN_TOOL_CONVERSATION = ("tool_call_round_trip", [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {
        "name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}}}]},
    {"role": "tool", "content": "{\"temp\": 21}"},
    {"role": "tool", "content": "{\"sky\": \"clear\"}"},
], True)

# Training text for the synthetic Qwen2 vocabulary: merges across what the qwen2 pattern splits
# (letters+digits, digit runs, punctuation+space, words+apostrophes) must exist so that a wrong
# pre-tokenizer shows up as different ids.
CORPUS = "\n".join(TEXTS + EXTRA_TEXTS) + """
The year 2024 had 366 days; 1999, 2000 and 2025 did not. Call 555-1234 or 12345 now!
It's what they'd said: we're here, you've seen it, I'll go, he's gone, don't stop.
IT'S LOUD. THEY'RE HERE. WE'VE WON. I'D SAY.
def main(argv):\n    for i in range(10):\n        print(f"{i:02d}", argv[i])\n    return 0\n
    if x == 1:\n        y = x1 + x2  # comment\n\n\n
<html><body class="main">Hello, world!</body></html>
人工智能正在改变世界。我们的模型支持中文、日本語、한국어。
東京都は日本の首都です。カタカナとひらがな。
Ελληνικά και русский язык, naïve café, Straße.
Hello hello HELLO world World WORLD, the the the and and of of to to in in.
""" * 3

QWEN_HPARAMS = {
    "context_length": 4096, "embedding_length": 64, "block_count": 1, "feed_forward_length": 128,
    "head_count": 4, "head_count_kv": 4, "rms_eps": 1e-6, "rope_freq_base": 1000000.0,
}


def bytes_to_unicode():
    """GPT-2's byte alphabet: printable Latin-1 bytes as themselves, the rest from U+0100 on."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def train_bpe(corpus: str, n_merges: int):
    """A plain BPE trainer over words split at whitespace boundaries (not the qwen2 pattern, on
    purpose). Ties go to the lexicographically smallest pair, so the result is deterministic."""
    alphabet = bytes_to_unicode()
    words = collections.Counter(re.findall(r" ?[^\s]+|\s+", corpus))
    seqs = {w: [alphabet[b] for b in w.encode("utf-8")] for w in words}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, count in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        for w in words:
            s = seqs[w]
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    byte_tokens = [alphabet[b] for b in range(256)]
    return byte_tokens, merges


def hf_environment() -> jinja2.Environment:
    """transformers' chat-template sandbox (apply_chat_template)."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def render_all(name: str, bos: str, eos: str, conversations):
    source = open(os.path.join(FIXTURES, "chat_templates", name)).read()
    template = hf_environment().from_string(source)
    renders = []
    for case, messages, add_generation_prompt in conversations:
        text = template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=bos, eos_token=eos)
        renders.append({"template": name, "case": case, "bos_token": bos, "eos_token": eos,
                        "messages": messages, "add_generation_prompt": add_generation_prompt,
                        "rendered": text})
    return renders


def write_qwen_gguf(path: str) -> None:
    specials = [("<|endoftext|>", gguf.TokenType.CONTROL), ("<|im_start|>", gguf.TokenType.CONTROL),
                ("<|im_end|>", gguf.TokenType.CONTROL), ("<tool_call>", gguf.TokenType.USER_DEFINED),
                ("</tool_call>", gguf.TokenType.USER_DEFINED)]
    corpus = CORPUS
    for text, _ in specials:  # so that no merged token spells a special token
        corpus = corpus.replace(text, " ")
    byte_tokens, merges = train_bpe(corpus, 1500)
    tokens = byte_tokens + [a + b for a, b in merges]
    assert len(set(tokens + [t for t, _ in specials])) == len(tokens) + len(specials), "duplicate token"
    types = [gguf.TokenType.NORMAL] * len(tokens)
    first_special = len(tokens)
    for text, kind in specials:
        tokens.append(text)
        types.append(kind)
    hp = QWEN_HPARAMS
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_name("rotor-test qwen2-style tokenizer")
    w.add_context_length(hp["context_length"])
    w.add_embedding_length(hp["embedding_length"])
    w.add_block_count(hp["block_count"])
    w.add_feed_forward_length(hp["feed_forward_length"])
    w.add_head_count(hp["head_count"])
    w.add_head_count_kv(hp["head_count_kv"])
    w.add_layer_norm_rms_eps(hp["rms_eps"])
    w.add_rope_freq_base(hp["rope_freq_base"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{a} {b}" for a, b in merges])
    w.add_bos_token_id(first_special)       # <|endoftext|>, as in Qwen 2
    w.add_eos_token_id(first_special + 2)   # <|im_end|>
    w.add_pad_token_id(first_special)
    w.add_add_bos_token(False)
    w.add_chat_template(open(os.path.join(FIXTURES, "chat_templates", "qwen2.5.jinja")).read())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path}: {len(tokens)} tokens, {len(merges)} merges")


def cases_for(llm: llama_cpp.Llama, texts):
    cases = []
    for text in texts:
        raw = text.encode("utf-8")
        ids = llm.tokenize(raw, add_bos=False, special=True)
        plain = llm.tokenize(raw, add_bos=False, special=False)
        back = llm.detokenize(ids, special=True).decode("utf-8", "replace")
        if back != text:
            print(f"  note: llama.cpp detokenize does not round-trip {text[:40]!r}: {back[:40]!r}")
        cases.append({"text": text, "ids": ids, "ids_plain": plain})
    return cases


def sha256(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def dump(name: str, value) -> None:
    with open(os.path.join(FIXTURES, name), "w") as f:
        json.dump(value, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", name)


def main() -> None:
    gemma_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GEMMA
    generator = f"llama-cpp-python {llama_cpp.__version__}"

    gemma_renders = render_all("gemma3.jinja", "<bos>", "<eos>", CONVERSATIONS)
    qwen_renders = render_all("qwen2.5.jinja", "", "<|im_end|>", CONVERSATIONS + [QWEN_TOOL_CONVERSATION])
    dump("chat_template_renders.json", {"generator": f"jinja2 {jinja2.__version__}",
                                        "renders": gemma_renders + qwen_renders})

    llm = llama_cpp.Llama(model_path=gemma_path, vocab_only=True, verbose=False)
    texts = TEXTS + EXTRA_TEXTS + [GEMMA_SPECIAL] + [r["rendered"] for r in gemma_renders]
    dump("tokenizer_gemma3.json", {"generator": generator, "model_sha256": sha256(gemma_path),
                                   "cases": cases_for(llm, texts)})

    qwen_path = os.path.join(tempfile.mkdtemp(), "tokenizer_qwen2.gguf")
    write_qwen_gguf(qwen_path)
    dump_gguf_metadata(qwen_path, os.path.join(FIXTURES, "tokenizer_qwen2_gguf.json"))
    llm = llama_cpp.Llama(model_path=qwen_path, vocab_only=True, verbose=False)
    texts = TEXTS + EXTRA_TEXTS + [QWEN_SPECIAL] + [r["rendered"] for r in qwen_renders]
    dump("tokenizer_qwen2.json", {"generator": generator, "model_sha256": sha256(qwen_path),
                                  "cases": cases_for(llm, texts)})


def dump_gguf_metadata(path, out):
    """Writes a tensor-less GGUF's metadata as `[key, type, value]` triples (the GGUF.* header
    fields left out), which crates/text/tests/it/model.rs turns back into a GGUF."""
    reader = gguf.GGUFReader(path)
    vt = gguf.GGUFValueType
    names = {vt.STRING: "str", vt.UINT32: "u32", vt.INT32: "i32", vt.FLOAT32: "f32", vt.BOOL: "bool"}
    assert len(reader.tensors) == 0, "the tokenizer GGUF holds no tensors"
    entries = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types[0] == vt.ARRAY:
            elem = field.types[1]
            if elem == vt.STRING:
                value = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
            else:
                value = [int(field.parts[i][0]) for i in field.data]
            entries.append([key, names[elem] + "[]", value])
            continue
        part = field.parts[field.data[0]]
        kind = field.types[0]
        if kind == vt.STRING:
            value = bytes(part).decode("utf-8")
        elif kind == vt.FLOAT32:
            value = float(part[0])
        elif kind == vt.BOOL:
            value = bool(part[0])
        else:
            value = int(part[0])
        entries.append([key, names[kind], value])
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"comment": "GGUF metadata of a tokenizer-only Qwen2-style model (no tensors); "
                              "the tests write it as a GGUF with rotor-model's writer. Made by "
                              "scripts/golden/tokenizer_fixtures.py.",
                   "metadata": entries}, f, ensure_ascii=False, indent=0)


if __name__ == "__main__":
    main()
