//! Shared by the engine tests on the real default model (SmolLM2-135M-Instruct Q4_1): the model,
//! loaded once per test binary, and a real chat prompt.
//!
//! The model is found via `ROTOR_TEST_MODEL`, else Rotor's model cache; tests FAIL if it is
//! missing.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use rotor_model::{GgufFile, LlamaModel, LoadOptions};

/// A real chat prompt: SmolLM2's template around "What color is the sky on a clear day?" (40
/// tokens: two full blocks of 16 and a partial one; from
/// crates/model/tests/fixtures/golden_smollm2_q4_1.json). Its greedy continuation is a varied
/// sentence, unlike synthetic prompts, whose continuations can degenerate.
pub const CHAT_PROMPT: [u32; 40] = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
    19712, 8182, 2, 198, 1, 4093, 198, 1780, 2380, 314, 260, 6376, 335, 253, 2437, 1194, 47, 2,
    198, 1, 520, 9531, 198,
];

/// The model, loaded once per test binary with one thread (test binaries may run beside other
/// multi-threaded work on a 2-core machine).
pub fn model() -> Arc<LlamaModel> {
    static MODEL: OnceLock<Arc<LlamaModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let gguf = GgufFile::open(&rotor_testing::model_path()).expect("the test model parses");
            Arc::new(LlamaModel::load(&gguf, LoadOptions { threads: 1 }).expect("model loads"))
        })
        .clone()
}
