//! The tiny architecture fixtures of scripts/golden/tiny_models.py: reading them, and rebuilding
//! their GGUF models bit for bit from the spec with the script's integer generator.

use rotor_model::gguf::write::GgufBuilder;
use rotor_model::gguf::MetaValue;
use rotor_model::quant::{quantize_row, GgmlType};
use rotor_model::GgufFile;
use serde_json::Value;

/// The generator's seed (`SEED` in tiny_models.py).
const SEED: u64 = 0x5EED_2025;

pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub offset: f32,
    pub scale: f32,
}

/// One fixture: the model spec and llama.cpp's outputs.
pub struct Fixture {
    pub arch: String,
    pub metadata: Vec<(String, MetaValue)>,
    pub tensors: Vec<TensorSpec>,
    pub prompt: Vec<u32>,
    /// (prompt position, full logits), ascending positions.
    pub logits: Vec<(usize, Vec<f32>)>,
    pub greedy: Vec<u32>,
    pub greedy_gaps: Vec<f32>,
    /// Logits after the last greedy token was fed.
    pub decode_logits: Vec<f32>,
    /// FNV-1a 64 of every tensor's F32 bytes, in spec order, as the script generated them.
    pub weights_fnv1a64: u64,
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn ints(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array of ints")
        .iter()
        .map(|x| x.as_u64().expect("int") as u32)
        .collect()
}

impl Fixture {
    pub fn load(arch: &str) -> Fixture {
        let path = format!(
            "{}/tests/fixtures/arch_{arch}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let json: Value = serde_json::from_str(&text).expect("fixture JSON");
        let spec = &json["spec"];
        assert_eq!(json["seed"].as_u64(), Some(SEED), "generator seed");
        let metadata = spec["metadata"]
            .as_array()
            .expect("metadata")
            .iter()
            .map(|kv| {
                let key = kv[0].as_str().expect("key").to_string();
                let value = match kv[1].as_str().expect("type") {
                    "u32" => MetaValue::U32(kv[2].as_u64().expect("u32") as u32),
                    "f32" => MetaValue::F32(kv[2].as_f64().expect("f32") as f32),
                    "str" => MetaValue::Str(kv[2].as_str().expect("str").to_string()),
                    "bool" => MetaValue::Bool(kv[2].as_bool().expect("bool")),
                    other => panic!("metadata type {other}"),
                };
                (key, value)
            })
            .collect();
        let tensors = spec["tensors"]
            .as_array()
            .expect("tensors")
            .iter()
            .map(|t| TensorSpec {
                name: t["name"].as_str().expect("name").to_string(),
                dims: t["dims"]
                    .as_array()
                    .expect("dims")
                    .iter()
                    .map(|d| d.as_u64().expect("dim"))
                    .collect(),
                offset: t["offset"].as_f64().expect("offset") as f32,
                scale: t["scale"].as_f64().expect("scale") as f32,
            })
            .collect();
        let mut logits: Vec<(usize, Vec<f32>)> = json["logits"]
            .as_object()
            .expect("logits")
            .iter()
            .map(|(pos, v)| (pos.parse().expect("position"), floats(v)))
            .collect();
        logits.sort_by_key(|(pos, _)| *pos);
        Fixture {
            arch: spec["architecture"].as_str().expect("arch").to_string(),
            metadata,
            tensors,
            prompt: ints(&json["prompt"]),
            logits,
            greedy: ints(&json["greedy"]),
            greedy_gaps: floats(&json["greedy_gaps"]),
            decode_logits: floats(&json["decode_logits"]),
            weights_fnv1a64: u64::from_str_radix(
                json["weights_fnv1a64"].as_str().expect("weights hash"),
                16,
            )
            .expect("hex hash"),
        }
    }

    /// The model with every matrix in `matrix_dtype` (1-D tensors stay F32).
    pub fn gguf(&self, matrix_dtype: GgmlType) -> GgufFile {
        let mut b =
            GgufBuilder::new().kv("general.architecture", MetaValue::Str(self.arch.clone()));
        for (key, value) in &self.metadata {
            b = b.kv(key, value.clone());
        }
        for t in &self.tensors {
            let n: u64 = t.dims.iter().product();
            let values = tensor_values(&t.name, n as usize, t.offset, t.scale);
            let dtype = if t.dims.len() == 1 {
                GgmlType::F32
            } else {
                matrix_dtype
            };
            let bytes = quantize_row(dtype, &values).expect("quantizable type");
            b = b.tensor(&t.name, &t.dims, dtype, bytes);
        }
        GgufFile::from_bytes(b.to_bytes()).expect("valid tiny GGUF")
    }

    /// The spec with metadata `key` set to `value` (added or replaced).
    pub fn with_metadata(mut self, key: &str, value: MetaValue) -> Fixture {
        self.metadata.retain(|(k, _)| k != key);
        self.metadata.push((key.to_string(), value));
        self
    }

    /// FNV-1a 64 of the weights this side generates (compare with `weights_fnv1a64`).
    pub fn generated_weights_hash(&self) -> u64 {
        self.tensors.iter().fold(FNV_OFFSET, |h, t| {
            let n: u64 = t.dims.iter().product();
            let values = tensor_values(&t.name, n as usize, t.offset, t.scale);
            fnv1a64(h, values.iter().flat_map(|v| v.to_le_bytes()))
        })
    }
}

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;

fn fnv1a64(h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3))
}

/// tiny_models.py's `tensor_values`: splitmix64 → 24-bit uniform → `offset + scale * (2u - 1)`.
pub fn tensor_values(name: &str, n: usize, offset: f32, scale: f32) -> Vec<f32> {
    let seed = fnv1a64(FNV_OFFSET, name.bytes()) ^ SEED;
    (1..=n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 * (1.0 / (1u32 << 24) as f32);
            offset + scale * (2.0 * u - 1.0)
        })
        .collect()
}
