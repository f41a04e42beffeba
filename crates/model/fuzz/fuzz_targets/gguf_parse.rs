//! Fuzz target: any byte string given to the GGUF reader yields Ok or Err, never a panic, and an
//! accepted file's tensors are all readable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotor_model::GgufFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = GgufFile::from_bytes(data.to_vec()) {
        for info in file.tensor_infos() {
            let view = file
                .tensor(&info.name)
                .expect("listed tensors are readable");
            assert_eq!(view.data.len() as u64, info.size_bytes());
        }
    }
});
