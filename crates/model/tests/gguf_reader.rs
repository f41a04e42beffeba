//! GGUF reader: round trips through the in-memory writer, one test per malformed-input error, a
//! truncation sweep, and the real SmolLM2 file.

use std::path::PathBuf;

use rotor_model::gguf::write::{GgufBuilder, TensorEntry};
use rotor_model::gguf::MetaValue;
use rotor_model::quant::GgmlType;
use rotor_model::{Error, GgufFile};

fn model_path() -> PathBuf {
    rotor_testing::model_path()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A small valid file: every value type, a nested array, three tensors of different types.
fn sample() -> GgufBuilder {
    GgufBuilder::new()
        .kv("general.architecture", MetaValue::Str("llama".into()))
        .kv("a.u8", MetaValue::U8(200))
        .kv("a.i8", MetaValue::I8(-5))
        .kv("a.u16", MetaValue::U16(60000))
        .kv("a.i16", MetaValue::I16(-30000))
        .kv("a.u32", MetaValue::U32(4_000_000_000))
        .kv("a.i32", MetaValue::I32(-7))
        .kv("a.f32", MetaValue::F32(1.5e-5))
        .kv("a.bool", MetaValue::Bool(true))
        .kv("a.u64", MetaValue::U64(1 << 40))
        .kv("a.i64", MetaValue::I64(-(1 << 40)))
        .kv("a.f64", MetaValue::F64(0.25))
        .kv(
            "a.strings",
            MetaValue::Array(vec![
                MetaValue::Str("x".into()),
                MetaValue::Str("héllo".into()),
            ]),
        )
        .kv(
            "a.nested",
            MetaValue::Array(vec![
                MetaValue::Array(vec![MetaValue::I32(1), MetaValue::I32(-2)]),
                MetaValue::Array(vec![MetaValue::I32(3)]),
            ]),
        )
        .tensor(
            "t.f32",
            &[3, 2],
            GgmlType::F32,
            f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        )
        .tensor(
            "t.q8",
            &[64],
            GgmlType::Q8_0,
            (0..68).map(|i| i as u8).collect(),
        )
        .tensor("t.q41", &[32, 1], GgmlType::Q4_1, vec![7u8; 20])
}

#[test]
fn round_trips_metadata_of_every_type() {
    let b = sample();
    let f = GgufFile::from_bytes(b.to_bytes()).expect("valid file");
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.metadata().len(), b.metadata.len());
    for (k, v) in &b.metadata {
        assert_eq!(f.get(k), Some(v), "key {k}");
    }
    assert_eq!(f.get_u32("a.u8").unwrap(), 200);
    assert_eq!(f.get_u32("a.u16").unwrap(), 60000);
    assert_eq!(f.get_u32("a.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_f32("a.f32").unwrap(), 1.5e-5);
    assert_eq!(f.get_f32("a.f64").unwrap(), 0.25);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert!(f.get_bool("a.bool").unwrap());
    assert_eq!(
        f.get_string_array("a.strings").unwrap(),
        vec!["x".to_string(), "héllo".into()]
    );
    assert!(matches!(
        f.get_i32_array("a.strings"),
        Err(Error::WrongType { .. })
    ));
}

#[test]
fn getters_name_the_key_on_error() {
    let f = GgufFile::from_bytes(sample().to_bytes()).unwrap();
    assert!(matches!(f.get_u32("nope"), Err(Error::MissingKey { key }) if key == "nope"));
    assert!(matches!(f.get_u32("a.i32"), Err(Error::WrongType { key, .. }) if key == "a.i32"));
    assert!(matches!(f.get_u32("a.u64"), Err(Error::WrongType { key, .. }) if key == "a.u64"));
    assert!(
        matches!(f.get_str("a.u8"), Err(Error::WrongType { key, found, .. }) if key == "a.u8" && found == "u8")
    );
    assert!(matches!(f.get_f32("a.str"), Err(Error::MissingKey { .. })));
    assert!(matches!(f.get_f32("a.i8"), Err(Error::WrongType { .. })));
    assert!(matches!(f.tensor("t.none"), Err(Error::MissingTensor { name }) if name == "t.none"));
}

#[test]
fn round_trips_tensors() {
    let f = GgufFile::from_bytes(sample().to_bytes()).unwrap();
    let infos = f.tensor_infos();
    assert_eq!(infos.len(), 3);
    assert_eq!(infos[0].name, "t.f32");
    assert_eq!(infos[0].dims, vec![3, 2]);
    assert_eq!(infos[0].dtype, GgmlType::F32);
    assert_eq!(infos[0].offset, 0);
    assert_eq!(infos[1].offset, 32);
    assert_eq!(infos[2].offset, 128);
    assert_eq!(f.data_start() % 32, 0);
    let t = f.tensor("t.f32").unwrap();
    assert_eq!(t.data, &f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])[..]);
    let t = f.tensor("t.q8").unwrap();
    assert_eq!(t.data.len(), 68);
    assert_eq!(t.data, &(0..68).map(|i| i as u8).collect::<Vec<_>>()[..]);
    let t = f.tensor("t.q41").unwrap();
    assert_eq!(t.data, &[7u8; 20][..]);
    assert_eq!(t.info.size_bytes(), 20);
}

#[test]
fn accepts_v2_and_custom_alignment() {
    let mut b = sample().kv("general.alignment", MetaValue::U32(64));
    b.version = 2;
    let f = GgufFile::from_bytes(b.to_bytes()).unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_start() % 64, 0);
    assert_eq!(f.tensor_infos()[1].offset, 64);
    assert_eq!(f.tensor("t.q41").unwrap().data, &[7u8; 20][..]);
}

#[test]
fn empty_file_without_tensors_parses() {
    let f = GgufFile::from_bytes(GgufBuilder::new().to_bytes()).unwrap();
    assert!(f.metadata().is_empty());
    assert!(f.tensor_infos().is_empty());
}

fn parse_err(bytes: Vec<u8>) -> Error {
    GgufFile::from_bytes(bytes).expect_err("must be rejected")
}

#[test]
fn rejects_bad_magic() {
    let mut bytes = sample().to_bytes();
    bytes[..4].copy_from_slice(b"GGML");
    assert!(matches!(parse_err(bytes), Error::BadMagic { found } if &found == b"GGML"));
}

#[test]
fn rejects_unsupported_version() {
    for version in [1, 4, u32::MAX] {
        let mut b = sample();
        b.version = version;
        let err = parse_err(b.to_bytes());
        assert!(
            matches!(err, Error::UnsupportedVersion { version: v } if v == version),
            "{err}"
        );
    }
}

#[test]
fn rejects_truncated_header() {
    let err = parse_err(b"GGUF\x03\x00\x00\x00\x01".to_vec());
    assert!(
        matches!(
            err,
            Error::Truncated {
                what: "tensor count",
                offset: 8,
                needed: 8,
                available: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_truncated_string() {
    // A key claiming 10 bytes followed by only 3.
    let mut bytes = b"GGUF\x03\x00\x00\x00".to_vec();
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&10u64.to_le_bytes());
    bytes.extend_from_slice(b"abcdefghi");
    let err = parse_err(bytes);
    assert!(
        matches!(
            err,
            Error::Truncated {
                what: "metadata key",
                offset: 32,
                needed: 10,
                available: 9
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_absurd_counts_without_allocating() {
    // Tensor count.
    let mut bytes = GgufBuilder::new().to_bytes();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        parse_err(bytes),
        Error::ImplausibleCount {
            what: "tensor count",
            count: u64::MAX,
            ..
        }
    ));
    // Metadata count.
    let mut bytes = GgufBuilder::new().to_bytes();
    bytes[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        parse_err(bytes),
        Error::ImplausibleCount {
            what: "metadata count",
            ..
        }
    ));
    // Array length: key "k", type array, element type u64, count 2^62.
    let mut bytes = GgufBuilder::new()
        .kv("k", MetaValue::Array(vec![MetaValue::U64(1)]))
        .to_bytes();
    let at = 24 + 8 + 1 + 4 + 4;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(
        matches!(parse_err(bytes), Error::ImplausibleCount { what: "array length", count, .. } if count == 1 << 62)
    );
    // String length.
    let mut bytes = GgufBuilder::new()
        .kv("k", MetaValue::Str("v".into()))
        .to_bytes();
    let at = 24 + 8 + 1 + 4;
    bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = parse_err(bytes);
    assert!(
        matches!(
            err,
            Error::Truncated {
                what: "metadata string",
                needed: u64::MAX,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_unknown_value_type() {
    let mut bytes = GgufBuilder::new().kv("key", MetaValue::U8(1)).to_bytes();
    let at = 24 + 8 + 3;
    bytes[at..at + 4].copy_from_slice(&13u32.to_le_bytes());
    assert!(
        matches!(parse_err(bytes), Error::UnknownValueType { key, type_id: 13 } if key == "key")
    );
    // Unknown array element type.
    let mut bytes = GgufBuilder::new()
        .kv("key", MetaValue::Array(vec![MetaValue::U8(1)]))
        .to_bytes();
    let at = 24 + 8 + 3 + 4;
    bytes[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    assert!(
        matches!(parse_err(bytes), Error::UnknownValueType { key, type_id: 99 } if key == "key")
    );
}

#[test]
fn rejects_deeply_nested_arrays() {
    let mut v = MetaValue::U8(0);
    for _ in 0..20 {
        v = MetaValue::Array(vec![v]);
    }
    let err = parse_err(GgufBuilder::new().kv("deep", v).to_bytes());
    assert!(
        matches!(err, Error::NestingTooDeep { ref key, limit: 8 } if key == "deep"),
        "{err}"
    );
}

#[test]
fn rejects_invalid_utf8_and_duplicates() {
    let mut bytes = GgufBuilder::new().kv("ab", MetaValue::U8(1)).to_bytes();
    bytes[32] = 0xff;
    assert!(matches!(
        parse_err(bytes),
        Error::InvalidUtf8 {
            what: "metadata key",
            offset: 32
        }
    ));
    let b = GgufBuilder::new()
        .kv("k", MetaValue::U8(1))
        .kv("k", MetaValue::U8(2));
    assert!(matches!(parse_err(b.to_bytes()), Error::DuplicateKey { key } if key == "k"));
    let b = GgufBuilder::new()
        .tensor("t", &[1], GgmlType::F32, vec![0; 4])
        .tensor("t", &[1], GgmlType::F32, vec![0; 4]);
    assert!(matches!(parse_err(b.to_bytes()), Error::DuplicateTensor { tensor } if tensor == "t"));
}

#[test]
fn rejects_bad_alignment() {
    for (value, alignment) in [(MetaValue::U32(0), 0), (MetaValue::U32(24), 24)] {
        let mut b = GgufBuilder::new().kv("general.alignment", value);
        b.alignment = 32;
        let err = parse_err(b.to_bytes());
        assert!(
            matches!(err, Error::BadAlignment { alignment: a } if a == alignment),
            "{err}"
        );
    }
    let b = GgufBuilder::new().kv("general.alignment", MetaValue::Str("32".into()));
    assert!(
        matches!(parse_err(b.to_bytes()), Error::WrongType { key, .. } if key == "general.alignment")
    );
}

fn raw(name: &str, dims: &[u64], type_id: u32, offset: Option<u64>, len: usize) -> TensorEntry {
    TensorEntry {
        name: name.into(),
        dims: dims.to_vec(),
        type_id,
        offset,
        data: vec![0; len],
    }
}

#[test]
fn rejects_unknown_tensor_type() {
    let b = GgufBuilder::new().tensor_raw(raw("w", &[32], 4, None, 18));
    assert!(
        matches!(parse_err(b.to_bytes()), Error::UnknownTensorType { tensor, type_id: 4 } if tensor == "w")
    );
    let b = GgufBuilder::new().tensor_raw(raw("w", &[32], 1000, None, 18));
    assert!(
        matches!(parse_err(b.to_bytes()), Error::UnknownTensorType { tensor, type_id: 1000 } if tensor == "w")
    );
}

#[test]
fn rejects_bad_dim_count() {
    let b = GgufBuilder::new().tensor_raw(raw("w", &[], 0, None, 4));
    assert!(
        matches!(parse_err(b.to_bytes()), Error::BadDimCount { tensor, n_dims: 0 } if tensor == "w")
    );
    let b = GgufBuilder::new().tensor_raw(raw("w", &[1, 1, 1, 1, 1], 0, None, 4));
    assert!(
        matches!(parse_err(b.to_bytes()), Error::BadDimCount { tensor, n_dims: 5 } if tensor == "w")
    );
}

#[test]
fn rejects_tensor_out_of_bounds() {
    let b = GgufBuilder::new()
        .tensor("a", &[8], GgmlType::F32, vec![1; 32])
        .tensor_raw(raw("b", &[8], 0, Some(32), 16));
    let err = parse_err(b.to_bytes());
    assert!(
        matches!(err, Error::TensorOutOfBounds { ref tensor, offset: 32, size_bytes: 32, data_len: 48 } if tensor == "b"),
        "{err}"
    );
    // An offset near u64::MAX must not overflow.
    let b = GgufBuilder::new().tensor_raw(raw("c", &[8], 0, Some(u64::MAX - 31), 0));
    assert!(
        matches!(parse_err(b.to_bytes()), Error::TensorOutOfBounds { tensor, .. } if tensor == "c")
    );
}

#[test]
fn rejects_misaligned_offset() {
    let b = GgufBuilder::new().tensor_raw(raw("m", &[4], 0, Some(8), 16));
    let err = parse_err(b.to_bytes());
    assert!(
        matches!(err, Error::MisalignedTensor { tensor, offset: 8, alignment: 32 } if tensor == "m")
    );
}

#[test]
fn rejects_dims_overflow() {
    let b = GgufBuilder::new().tensor_raw(raw("big", &[1 << 32, 1 << 32], 0, None, 4));
    assert!(
        matches!(parse_err(b.to_bytes()), Error::DimsOverflow { tensor, .. } if tensor == "big")
    );
    // Element count fits but the byte size does not.
    let b = GgufBuilder::new().tensor_raw(raw("big", &[1 << 31, 1 << 31, 4], 0, None, 4));
    assert!(
        matches!(parse_err(b.to_bytes()), Error::DimsOverflow { tensor, .. } if tensor == "big")
    );
}

#[test]
fn rejects_row_not_multiple_of_block() {
    let b = GgufBuilder::new().tensor_raw(raw("q", &[48, 2], GgmlType::Q4_1.id(), None, 60));
    let err = parse_err(b.to_bytes());
    assert!(
        matches!(err, Error::RowNotBlockMultiple { ref tensor, dtype: GgmlType::Q4_1, row_len: 48, block_size: 32 } if tensor == "q"),
        "{err}"
    );
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample().to_bytes();
    GgufFile::from_bytes(bytes.clone()).expect("the full file is valid");
    for len in 0..bytes.len() {
        let result = GgufFile::from_bytes(bytes[..len].to_vec());
        assert!(
            result.is_err(),
            "truncated to {len} of {} bytes was accepted",
            bytes.len()
        );
    }
}

#[test]
fn ggml_type_geometry() {
    assert_eq!(GgmlType::from_id(3), Some(GgmlType::Q4_1));
    assert_eq!(GgmlType::from_id(4), None);
    assert_eq!(GgmlType::from_id(31), None);
    for t in GgmlType::ALL {
        assert_eq!(GgmlType::from_id(t.id()), Some(t));
    }
    let geom = |t: GgmlType| (t.block_size(), t.type_size());
    assert_eq!(geom(GgmlType::Q4_0), (32, 18));
    assert_eq!(geom(GgmlType::Q4_1), (32, 20));
    assert_eq!(geom(GgmlType::Q8_0), (32, 34));
    assert_eq!(geom(GgmlType::Q4_K), (256, 144));
    assert_eq!(geom(GgmlType::Q5_K), (256, 176));
    assert_eq!(geom(GgmlType::Q6_K), (256, 210));
    assert_eq!(
        GgmlType::Q4_1.bytes_for(576 * 1536),
        Some(576 * 1536 / 32 * 20)
    );
    assert_eq!(GgmlType::Q4_1.bytes_for(33), None);
}

#[test]
fn real_model_file() {
    let f = GgufFile::open(&model_path()).expect("open the real model");
    assert_eq!(f.version(), 3);
    assert_eq!(f.tensor_infos().len(), 272);
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    let emb = f.tensor("token_embd.weight").unwrap();
    assert_eq!(emb.info.dtype, GgmlType::Q8_0);
    assert_eq!(emb.info.dims, vec![576, 49152]);
    assert_eq!(emb.data.len(), 576 * 49152 / 32 * 34);
    let count = |t: GgmlType| f.tensor_infos().iter().filter(|i| i.dtype == t).count();
    assert_eq!(count(GgmlType::Q4_1), 210);
    assert_eq!(count(GgmlType::Q8_0), 1);
    assert_eq!(count(GgmlType::F32), 61);
    // Every tensor's bytes are reachable and sized exactly.
    for info in f.tensor_infos() {
        assert_eq!(
            f.tensor(&info.name).unwrap().data.len() as u64,
            info.size_bytes()
        );
    }
}
