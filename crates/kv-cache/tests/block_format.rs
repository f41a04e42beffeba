//! The KV block format: exact round trips, a named error for every kind of damage, and (as
//! properties) decode ∘ encode = identity and no single corrupted byte ever decodes.

use proptest::prelude::*;
use rotor_kv_cache::block_format::{KV_BLOCK_CHECKSUM_BYTES, KV_BLOCK_HEADER_BYTES};
use rotor_kv_cache::{
    decode_kv_block, decode_kv_block_expecting, encode_kv_block, encode_kv_block_with,
    model_fingerprint, Error, KvBlockHeader, KvBlockLayout, KvElementType, KvPayloadLayout,
    KV_BLOCK_FORMAT_VERSION,
};
use rotor_tokens::{chain_hash, local_block_hash, sequence_hashes};

fn layout(block_size_tokens: u32, dtype: KvElementType) -> KvBlockLayout {
    KvBlockLayout {
        model_fingerprint: model_fingerprint(b"smollm2-135m q4_1"),
        n_layers: 3,
        n_kv_heads: 2,
        head_dim: 4,
        block_size_tokens,
        dtype,
        payload_layout: KvPayloadLayout::LayerKvHeadSlot,
    }
}

/// The second block of a two-block prompt, with a payload of distinct bytes.
struct Sample {
    header: KvBlockHeader,
    tokens: Vec<u32>,
    payload: Vec<u8>,
}

fn sample(layout: KvBlockLayout) -> Sample {
    let bs = layout.block_size_tokens as usize;
    let prompt: Vec<u32> = (0..2 * bs as u32).map(|i| 100 + i * 7).collect();
    let hashes = sequence_hashes(&prompt, bs);
    let payload = (0..layout.payload_bytes().unwrap())
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    Sample {
        header: KvBlockHeader {
            layout,
            sequence_hash: hashes[1],
            parent_hash: Some(hashes[0]),
        },
        tokens: prompt[bs..].to_vec(),
        payload,
    }
}

fn encode(s: &Sample) -> Vec<u8> {
    let mut out = Vec::new();
    encode_kv_block(&s.header, &s.tokens, &s.payload, &mut out).expect("encodes");
    out
}

#[test]
fn round_trip_is_bit_exact_for_both_dtypes_and_a_first_block() {
    for dtype in [KvElementType::F32, KvElementType::F16] {
        let s = sample(layout(4, dtype));
        let bytes = encode(&s);
        assert_eq!(bytes.len(), s.header.layout.encoded_bytes().unwrap());
        let view = decode_kv_block_expecting(&bytes, &s.header.layout).expect("decodes");
        assert_eq!(view.header, s.header);
        assert_eq!(view.token_ids, s.tokens);
        assert_eq!(view.payload, &s.payload[..]);
        assert_eq!(view.local_hash, local_block_hash(&s.tokens));
        // Re-encoding the view gives the same bytes.
        let mut again = Vec::new();
        encode_kv_block(&view.header, &view.token_ids, view.payload, &mut again).unwrap();
        assert_eq!(again, bytes);
    }
    // A first block has no parent, and says so.
    let l = layout(4, KvElementType::F16);
    let tokens = vec![1, 2, 3, 4];
    let header = KvBlockHeader {
        layout: l,
        sequence_hash: local_block_hash(&tokens),
        parent_hash: None,
    };
    let mut bytes = Vec::new();
    let payload = vec![0u8; l.payload_bytes().unwrap()];
    encode_kv_block(&header, &tokens, &payload, &mut bytes).unwrap();
    assert_eq!(decode_kv_block(&bytes).unwrap().header.parent_hash, None);
}

#[test]
fn encoding_appends_to_a_reused_buffer_without_growing_it() {
    let s = sample(layout(4, KvElementType::F32));
    let mut buf = Vec::with_capacity(2 * s.header.layout.encoded_bytes().unwrap());
    let cap = buf.capacity();
    encode_kv_block(&s.header, &s.tokens, &s.payload, &mut buf).unwrap();
    let one = buf.len();
    encode_kv_block_with(&s.header, &s.tokens, &mut buf, |out| {
        out.extend_from_slice(&s.payload);
        Ok::<(), Error>(())
    })
    .unwrap();
    assert_eq!(buf.capacity(), cap);
    assert_eq!(buf[..one], buf[one..]);
    assert!(decode_kv_block(&buf[one..]).is_ok());
}

#[test]
fn a_flipped_payload_byte_is_a_checksum_mismatch() {
    let s = sample(layout(4, KvElementType::F16));
    let mut bytes = encode(&s);
    let at = KV_BLOCK_HEADER_BYTES + 16 + 10;
    bytes[at] ^= 0x01;
    assert!(matches!(
        decode_kv_block(&bytes),
        Err(Error::BlockChecksumMismatch { .. })
    ));
}

#[test]
fn a_flipped_header_byte_is_a_named_error() {
    let s = sample(layout(4, KvElementType::F16));
    let good = encode(&s);
    let flip = |at: usize| {
        let mut b = good.clone();
        b[at] ^= 0x10;
        decode_kv_block(&b).unwrap_err()
    };
    assert_eq!(flip(0), Error::BadBlockMagic { got: *b"BTRKVBLK" });
    assert_eq!(
        flip(8),
        Error::UnsupportedBlockVersion {
            got: KV_BLOCK_FORMAT_VERSION ^ 0x10,
            supported: KV_BLOCK_FORMAT_VERSION
        }
    );
    // Dtype, fingerprint, a dimension, sequence hash, parent hash: caught by the checksum.
    for at in [10, 16, 24, 40, 48] {
        assert!(
            matches!(flip(at), Error::BlockChecksumMismatch { .. }),
            "byte {at}: {:?}",
            flip(at)
        );
    }
    // A size field (payload bytes, tokens per block): the block no longer has the length its
    // header declares.
    assert!(matches!(flip(56), Error::BlockTruncated { .. }));
    assert!(matches!(flip(36), Error::BlockTruncated { .. }));
    // The checksum itself.
    assert!(matches!(
        flip(good.len() - 1),
        Error::BlockChecksumMismatch { .. }
    ));
}

#[test]
fn truncated_and_overlong_buffers_are_refused() {
    let s = sample(layout(4, KvElementType::F16));
    let bytes = encode(&s);
    for len in [
        0,
        7,
        KV_BLOCK_HEADER_BYTES - 1,
        KV_BLOCK_HEADER_BYTES,
        bytes.len() - 1,
    ] {
        assert!(
            matches!(
                decode_kv_block(&bytes[..len]),
                Err(Error::BlockTruncated { got, .. }) if got == len
            ),
            "length {len}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        decode_kv_block(&long).unwrap_err(),
        Error::BlockLengthMismatch {
            expected: bytes.len(),
            got: bytes.len() + 1
        }
    );
}

#[test]
fn a_different_layout_is_refused_naming_the_field() {
    let s = sample(layout(4, KvElementType::F16));
    let bytes = encode(&s);
    let ours = s.header.layout;
    let cases: [(&str, KvBlockLayout); 5] = [
        (
            "model_fingerprint",
            KvBlockLayout {
                model_fingerprint: model_fingerprint(b"another model"),
                ..ours
            },
        ),
        (
            "n_layers",
            KvBlockLayout {
                n_layers: 4,
                ..ours
            },
        ),
        (
            "head_dim",
            KvBlockLayout {
                head_dim: 8,
                ..ours
            },
        ),
        (
            "block_size_tokens",
            KvBlockLayout {
                block_size_tokens: 8,
                ..ours
            },
        ),
        (
            "dtype",
            KvBlockLayout {
                dtype: KvElementType::F32,
                ..ours
            },
        ),
    ];
    for (field, expected) in cases {
        match decode_kv_block_expecting(&bytes, &expected) {
            Err(Error::BlockLayoutMismatch { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn token_ids_that_do_not_hash_to_the_sequence_hash_are_refused() {
    let s = sample(layout(4, KvElementType::F16));
    // A sender that pairs the hash with other tokens (checksum valid: the sender wrote it so).
    let mut wrong = s.tokens.clone();
    wrong[2] += 1;
    let mut bytes = Vec::new();
    encode_kv_block(&s.header, &wrong, &s.payload, &mut bytes).unwrap();
    assert_eq!(
        decode_kv_block(&bytes).unwrap_err(),
        Error::BlockHashMismatch {
            claimed: s.header.sequence_hash,
            computed: chain_hash(s.header.parent_hash, local_block_hash(&wrong)),
        }
    );
    // Right tokens under a wrong parent: the chain does not close either.
    let orphan = KvBlockHeader {
        parent_hash: Some(12345),
        ..s.header
    };
    let mut bytes = Vec::new();
    encode_kv_block(&orphan, &s.tokens, &s.payload, &mut bytes).unwrap();
    assert!(matches!(
        decode_kv_block(&bytes),
        Err(Error::BlockHashMismatch { .. })
    ));
}

#[test]
fn encode_refuses_contents_that_do_not_fit_the_layout() {
    let s = sample(layout(4, KvElementType::F16));
    let mut out = Vec::new();
    assert_eq!(
        encode_kv_block(&s.header, &s.tokens[..3], &s.payload, &mut out).unwrap_err(),
        Error::BlockContentMismatch {
            what: "token ids",
            expected: 4,
            got: 3
        }
    );
    assert!(out.is_empty());
}

fn arb_layout() -> impl Strategy<Value = KvBlockLayout> {
    (
        any::<u64>(),
        1u32..4,
        1u32..3,
        1u32..5,
        1u32..6,
        prop_oneof![Just(KvElementType::F32), Just(KvElementType::F16)],
    )
        .prop_map(
            |(fp, n_layers, n_kv_heads, head_dim, bs, dtype)| KvBlockLayout {
                model_fingerprint: fp,
                n_layers,
                n_kv_heads,
                head_dim,
                block_size_tokens: bs,
                dtype,
                payload_layout: KvPayloadLayout::LayerKvHeadSlot,
            },
        )
}

/// A valid block: random layout, random prefix and tokens, random payload.
fn arb_block() -> impl Strategy<Value = (KvBlockHeader, Vec<u32>, Vec<u8>)> {
    arb_layout().prop_flat_map(|l| {
        let bs = l.block_size_tokens as usize;
        (
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(any::<u32>(), bs),
            proptest::collection::vec(any::<u8>(), l.payload_bytes().unwrap()),
        )
            .prop_map(move |(parent, tokens, payload)| {
                let header = KvBlockHeader {
                    layout: l,
                    sequence_hash: chain_hash(parent, local_block_hash(&tokens)),
                    parent_hash: parent,
                };
                (header, tokens, payload)
            })
    })
}

proptest! {
    #[test]
    fn decode_of_encode_is_the_identity((header, tokens, payload) in arb_block()) {
        let mut bytes = Vec::new();
        encode_kv_block(&header, &tokens, &payload, &mut bytes).unwrap();
        let view = decode_kv_block_expecting(&bytes, &header.layout).unwrap();
        prop_assert_eq!(view.header, header);
        prop_assert_eq!(&view.token_ids, &tokens);
        prop_assert_eq!(view.payload, &payload[..]);
    }

    #[test]
    fn no_corrupted_byte_ever_decodes(
        (header, tokens, payload) in arb_block(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mut bytes = Vec::new();
        encode_kv_block(&header, &tokens, &payload, &mut bytes).unwrap();
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        prop_assert!(decode_kv_block(&bytes).is_err(), "byte {} ^ {:#x} decoded", at, mask);
    }

    #[test]
    fn no_truncation_or_random_buffer_decodes_or_panics(
        (header, tokens, payload) in arb_block(),
        cut in any::<prop::sample::Index>(),
        junk in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = Vec::new();
        encode_kv_block(&header, &tokens, &payload, &mut bytes).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert!(decode_kv_block(&bytes[..cut]).is_err());
        prop_assert!(decode_kv_block(&junk).is_err());
        // Junk behind a valid header (magic and version right, sizes random).
        let mut forged = bytes[..KV_BLOCK_HEADER_BYTES.min(bytes.len())].to_vec();
        forged.extend_from_slice(&junk);
        forged.extend_from_slice(&[0; KV_BLOCK_CHECKSUM_BYTES]);
        prop_assert!(decode_kv_block(&forged).is_err());
    }
}
