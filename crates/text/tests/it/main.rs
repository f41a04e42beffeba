//! Integration tests for rotor-text, one binary. Tests that need SmolLM2 or Gemma 3 read the real
//! GGUF (`ROTOR_TEST_MODEL` / `ROTOR_TEST_GEMMA`, else Rotor's model cache) and fail if it is
//! missing; the Qwen2-style tokenizer is a small GGUF among the fixtures.

mod chat_template;
mod detokenizer;
mod llama_cpp_ids;
mod model;
mod model_templates;
mod parser_feed;
mod parser_props;
mod reasoning_parsers;
mod stop;
mod tokenizer;
mod tool_parser_api;
mod tool_parsers;
