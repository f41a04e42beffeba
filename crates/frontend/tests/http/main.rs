//! The frontend's HTTP tests: one binary, a real server on 127.0.0.1:0, real HTTP via reqwest,
//! the real SmolLM2 model card, and a scripted backend.

mod access;
mod anthropic;
mod bad_input;
mod choices;
mod embeddings;
mod generation;
mod logprobs;
mod overload;
mod responses_api;
mod service;
mod support;
mod tokenize;
mod tools;
