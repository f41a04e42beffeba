//! Integration tests for rotor-text, one binary. Tests that need SmolLM2 read the real GGUF
//! (`ROTOR_TEST_MODEL`, else the default cache path) and fail if it is missing.

mod chat_template;
mod detokenizer;
mod model;
mod stop;
mod tokenizer;
