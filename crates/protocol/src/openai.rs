//! OpenAI-compatible request and response bodies (owned by the frontend work).
