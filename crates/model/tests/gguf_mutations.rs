//! Property: no mutation of a valid GGUF image makes the reader panic; whatever it accepts is
//! self-consistent (every listed tensor is readable and sized exactly).

use proptest::prelude::*;
use rotor_model::gguf::write::GgufBuilder;
use rotor_model::gguf::MetaValue;
use rotor_model::quant::GgmlType;
use rotor_model::GgufFile;

fn valid_image() -> Vec<u8> {
    GgufBuilder::new()
        .kv("general.architecture", MetaValue::Str("llama".into()))
        .kv("general.alignment", MetaValue::U32(32))
        .kv("llama.block_count", MetaValue::U32(2))
        .kv("f", MetaValue::F32(0.5))
        .kv(
            "arr",
            MetaValue::Array(vec![
                MetaValue::Array(vec![MetaValue::Str("ab".into())]),
                MetaValue::Array(vec![MetaValue::Str("c".into())]),
            ]),
        )
        .kv(
            "ints",
            MetaValue::Array((0..5).map(MetaValue::I64).collect()),
        )
        .tensor("a", &[32, 2], GgmlType::Q4_1, vec![3; 40])
        .tensor("b", &[4], GgmlType::F32, vec![1; 16])
        .tensor("c", &[32], GgmlType::Q8_0, vec![9; 34])
        .to_bytes()
}

fn exercise(bytes: Vec<u8>) {
    if let Ok(f) = GgufFile::from_bytes(bytes) {
        for info in f.tensor_infos().to_vec() {
            let t = f.tensor(&info.name).expect("listed tensors are readable");
            assert_eq!(t.data.len() as u64, info.size_bytes());
        }
        for key in f.metadata().keys().cloned().collect::<Vec<_>>() {
            let _ = f.get_u32(&key);
            let _ = f.get_f32(&key);
            let _ = f.get_str(&key);
            let _ = f.get_string_array(&key);
            let _ = f.get_i32_array(&key);
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    /// Overwrites 8 bytes with a little-endian u64 (lengths, counts, offsets, dims).
    SetU64(usize, u64),
    Insert(usize, u8),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let big = prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(1 << 32),
        any::<u64>(),
        0u64..4096
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), big).prop_map(|(i, v)| Mutation::SetU64(i, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match *m {
        Mutation::Set(i, b) => bytes[i % n] = b,
        Mutation::SetU64(i, v) => {
            let at = i % n;
            let end = (at + 8).min(n);
            bytes[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
        }
        Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
        Mutation::Remove(i) => {
            bytes.remove(i % n);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn mutated_images_never_panic(muts in proptest::collection::vec(mutation(), 1..6), cut in any::<Option<usize>>()) {
        let mut bytes = valid_image();
        for m in &muts {
            apply(&mut bytes, m);
        }
        if let Some(c) = cut {
            let len = bytes.len();
            bytes.truncate(c % (len + 1));
        }
        exercise(bytes);
    }

    #[test]
    fn random_bytes_after_magic_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = b"GGUF\x03\x00\x00\x00".to_vec();
        bytes.extend_from_slice(&tail);
        exercise(bytes);
    }
}

#[test]
fn the_unmutated_image_is_valid() {
    let f = GgufFile::from_bytes(valid_image()).unwrap();
    assert_eq!(f.tensor_infos().len(), 3);
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 2);
}
