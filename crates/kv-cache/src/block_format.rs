//! The KV block format: one full KV block outside an engine's pool, self-describing and checked.
//!
//! Disaggregated serving (prefill → decode workers) and the offload tiers (host memory, disk,
//! peers) move and store blocks in this one format. Everything is little-endian:
//!
//! ```text
//! offset size  field
//!      0    8  magic  b"RTRKVBLK"
//!      8    2  format version (KV_BLOCK_FORMAT_VERSION)
//!     10    1  element dtype: 1 = f32, 2 = f16
//!     11    1  payload layout: 1 = LayerKvHeadSlot (below)
//!     12    4  flags: bit 0 = has a parent block; other bits 0
//!     16    8  model fingerprint (caller-supplied identity of architecture, shapes and weights)
//!     24    4  n_layers
//!     28    4  n_kv_heads
//!     32    4  head_dim
//!     36    4  block_size_tokens
//!     40    8  sequence hash of this block
//!     48    8  parent sequence hash (0 when there is no parent)
//!     56    8  payload bytes
//!     64       token ids: block_size_tokens × u32 (full blocks only)
//!      …       payload: payload bytes
//!      …    8  checksum: XXH3-64 (seed 0) of every byte before it
//! ```
//!
//! Payload layout `LayerKvHeadSlot`: for each layer in order, its K block then its V block, each
//! `[n_kv_heads][block_size_tokens][head_dim]` elements (the model's paged pool layout, so a
//! block is one contiguous copy per layer and pool).
//!
//! Decoding trusts nothing: magic, version, header fields, length, checksum, the layout expected
//! by the receiver and finally the token ids — which must chain from the parent hash to the
//! sequence hash under `rotor_tokens` (the one block-hash implementation) — are all checked, and
//! every failure is a named [`Error`] variant, never a panic and never a view of wrong KV.
//! Encoding appends to a caller's `Vec`, so a reused buffer makes it allocation-free.

use rotor_tokens::{chain_hash, local_block_hash, LocalBlockHash, SequenceHash};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::error::Error;

/// First eight bytes of every encoded block.
pub const KV_BLOCK_MAGIC: [u8; 8] = *b"RTRKVBLK";
/// The format version this build writes and reads.
pub const KV_BLOCK_FORMAT_VERSION: u16 = 1;
/// Bytes before the token ids.
pub const KV_BLOCK_HEADER_BYTES: usize = 64;
/// Bytes of the trailing checksum.
pub const KV_BLOCK_CHECKSUM_BYTES: usize = 8;

const FLAG_HAS_PARENT: u32 = 1;
/// Seed of [`model_fingerprint`], apart from the block-hash seed so the two never coincide.
const FINGERPRINT_SEED: u64 = 0x524f_544f_524b_5642;

/// Element type of the K/V values in a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvElementType {
    F32,
    F16,
}

impl KvElementType {
    pub fn size_bytes(self) -> usize {
        match self {
            KvElementType::F32 => 4,
            KvElementType::F16 => 2,
        }
    }

    fn code(self) -> u8 {
        match self {
            KvElementType::F32 => 1,
            KvElementType::F16 => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(KvElementType::F32),
            2 => Some(KvElementType::F16),
            _ => None,
        }
    }
}

/// Order of the values in a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvPayloadLayout {
    /// Per layer: K then V, each `[n_kv_heads][block_size_tokens][head_dim]`.
    LayerKvHeadSlot,
}

impl KvPayloadLayout {
    fn code(self) -> u8 {
        match self {
            KvPayloadLayout::LayerKvHeadSlot => 1,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(KvPayloadLayout::LayerKvHeadSlot),
            _ => None,
        }
    }
}

/// What a payload's bytes mean. A receiver accepts a block only when every field equals its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KvBlockLayout {
    /// Identity of the model (architecture, shapes, weights) supplied by whoever builds the
    /// engine; KV computed by another model must never be reused, even with equal shapes.
    pub model_fingerprint: u64,
    pub n_layers: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub block_size_tokens: u32,
    pub dtype: KvElementType,
    pub payload_layout: KvPayloadLayout,
}

impl KvBlockLayout {
    /// Payload bytes of one block: K and V of every layer. `None` if that overflows `usize`.
    pub fn payload_bytes(&self) -> Option<usize> {
        [
            self.n_layers,
            self.n_kv_heads,
            self.head_dim,
            self.block_size_tokens,
        ]
        .iter()
        .try_fold(2 * self.dtype.size_bytes(), |acc, &d| {
            acc.checked_mul(d as usize)
        })
    }

    /// Bytes of one encoded block with this layout. `None` if that overflows `usize`.
    pub fn encoded_bytes(&self) -> Option<usize> {
        let tokens = (self.block_size_tokens as usize).checked_mul(4)?;
        KV_BLOCK_HEADER_BYTES
            .checked_add(tokens)?
            .checked_add(self.payload_bytes()?)?
            .checked_add(KV_BLOCK_CHECKSUM_BYTES)
    }

    /// `Ok` if `got` equals `self` (the receiver's layout); otherwise the first differing field.
    pub fn check_matches(&self, got: &KvBlockLayout) -> Result<(), Error> {
        let fields: [(&'static str, u64, u64); 7] = [
            (
                "model_fingerprint",
                self.model_fingerprint,
                got.model_fingerprint,
            ),
            ("n_layers", self.n_layers.into(), got.n_layers.into()),
            ("n_kv_heads", self.n_kv_heads.into(), got.n_kv_heads.into()),
            ("head_dim", self.head_dim.into(), got.head_dim.into()),
            (
                "block_size_tokens",
                self.block_size_tokens.into(),
                got.block_size_tokens.into(),
            ),
            ("dtype", self.dtype.code().into(), got.dtype.code().into()),
            (
                "payload_layout",
                self.payload_layout.code().into(),
                got.payload_layout.code().into(),
            ),
        ];
        match fields.into_iter().find(|(_, e, g)| e != g) {
            None => Ok(()),
            Some((field, expected, got)) => Err(Error::BlockLayoutMismatch {
                field,
                expected,
                got,
            }),
        }
    }
}

/// A model fingerprint from identity bytes of the caller's choosing (architecture name, shapes,
/// a digest of the weights): XXH3-64 with a seed of its own.
pub fn model_fingerprint(identity: &[u8]) -> u64 {
    xxh3_64_with_seed(identity, FINGERPRINT_SEED)
}

/// Which block an encoded block is: its layout and its place in the hash chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KvBlockHeader {
    pub layout: KvBlockLayout,
    pub sequence_hash: SequenceHash,
    /// The sequence hash of the block before it; `None` for a sequence's first block.
    pub parent_hash: Option<SequenceHash>,
}

/// A decoded, fully checked block borrowing its payload from the encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvBlockView<'a> {
    pub header: KvBlockHeader,
    /// `block_size_tokens` ids; they chain from `parent_hash` to `sequence_hash`.
    pub token_ids: Vec<u32>,
    /// The tokens' own hash (`rotor_tokens::local_block_hash`), as KV events carry it.
    pub local_hash: LocalBlockHash,
    /// `payload_bytes()` bytes in the header's payload layout.
    pub payload: &'a [u8],
}

/// Appends one encoded block to `out`. `token_ids` must have `block_size_tokens` ids and
/// `payload` exactly `payload_bytes()` bytes; the token ids are not hashed here (the receiver
/// checks them). On error `out` is unchanged.
pub fn encode_kv_block(
    header: &KvBlockHeader,
    token_ids: &[u32],
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    encode_kv_block_with(header, token_ids, out, |buf| {
        buf.extend_from_slice(payload);
        Ok::<(), Error>(())
    })
}

/// [`encode_kv_block`] with the payload appended by `write_payload` straight into `out` (for a
/// copy out of KV storage without an intermediate buffer). `write_payload` must append exactly
/// `payload_bytes()` bytes; its own error is returned as is. On any error `out` is truncated back
/// to its length before the call.
pub fn encode_kv_block_with<E>(
    header: &KvBlockHeader,
    token_ids: &[u32],
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<Error>,
{
    let layout = &header.layout;
    let (Some(payload_bytes), Some(encoded_bytes)) =
        (layout.payload_bytes(), layout.encoded_bytes())
    else {
        return Err(Error::BlockLayoutTooLarge.into());
    };
    if token_ids.len() != layout.block_size_tokens as usize {
        return Err(Error::BlockContentMismatch {
            what: "token ids",
            expected: layout.block_size_tokens as usize,
            got: token_ids.len(),
        }
        .into());
    }
    let start = out.len();
    out.reserve(encoded_bytes);
    out.extend_from_slice(&KV_BLOCK_MAGIC);
    out.extend_from_slice(&KV_BLOCK_FORMAT_VERSION.to_le_bytes());
    out.push(layout.dtype.code());
    out.push(layout.payload_layout.code());
    let flags = if header.parent_hash.is_some() {
        FLAG_HAS_PARENT
    } else {
        0
    };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&layout.model_fingerprint.to_le_bytes());
    for dim in [
        layout.n_layers,
        layout.n_kv_heads,
        layout.head_dim,
        layout.block_size_tokens,
    ] {
        out.extend_from_slice(&dim.to_le_bytes());
    }
    out.extend_from_slice(&header.sequence_hash.to_le_bytes());
    out.extend_from_slice(&header.parent_hash.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&(payload_bytes as u64).to_le_bytes());
    debug_assert_eq!(out.len() - start, KV_BLOCK_HEADER_BYTES);
    for t in token_ids {
        out.extend_from_slice(&t.to_le_bytes());
    }
    let payload_start = out.len();
    if let Err(e) = write_payload(out) {
        out.truncate(start);
        return Err(e);
    }
    let written = out.len() - payload_start;
    if written != payload_bytes {
        out.truncate(start);
        return Err(Error::BlockContentMismatch {
            what: "payload bytes",
            expected: payload_bytes,
            got: written,
        }
        .into());
    }
    let checksum = xxh3_64(&out[start..]);
    out.extend_from_slice(&checksum.to_le_bytes());
    Ok(())
}

/// Decodes and checks one encoded block (`bytes` is exactly one block). See the module docs for
/// what is checked, in order.
pub fn decode_kv_block(bytes: &[u8]) -> Result<KvBlockView<'_>, Error> {
    let fixed = bytes
        .get(..KV_BLOCK_HEADER_BYTES)
        .ok_or(Error::BlockTruncated {
            needed: KV_BLOCK_HEADER_BYTES + KV_BLOCK_CHECKSUM_BYTES,
            got: bytes.len(),
        })?;
    let magic: [u8; 8] = le_array(fixed, 0);
    if magic != KV_BLOCK_MAGIC {
        return Err(Error::BadBlockMagic { got: magic });
    }
    let version = u16::from_le_bytes(le_array(fixed, 8));
    if version != KV_BLOCK_FORMAT_VERSION {
        return Err(Error::UnsupportedBlockVersion {
            got: version,
            supported: KV_BLOCK_FORMAT_VERSION,
        });
    }
    let dtype_code = fixed[10];
    let layout_code = fixed[11];
    let flags = u32::from_le_bytes(le_array(fixed, 12));
    let u32_at = |at: usize| u32::from_le_bytes(le_array(fixed, at));
    let u64_at = |at: usize| u64::from_le_bytes(le_array(fixed, at));
    let model_fingerprint = u64_at(16);
    let (n_layers, n_kv_heads, head_dim, block_size_tokens) =
        (u32_at(24), u32_at(28), u32_at(32), u32_at(36));
    let sequence_hash = u64_at(40);
    let parent_raw = u64_at(48);
    let declared_payload = u64_at(56);

    // Lengths first, from the declared sizes, so the checksum is read where the sender put it.
    let tokens_bytes = (block_size_tokens as u64) * 4;
    let total = (KV_BLOCK_HEADER_BYTES as u64)
        .checked_add(tokens_bytes)
        .and_then(|n| n.checked_add(declared_payload))
        .and_then(|n| n.checked_add(KV_BLOCK_CHECKSUM_BYTES as u64))
        .ok_or(Error::InvalidBlockHeader {
            field: "payload_bytes",
            value: declared_payload,
        })?;
    if (bytes.len() as u64) < total {
        return Err(Error::BlockTruncated {
            needed: usize::try_from(total).unwrap_or(usize::MAX),
            got: bytes.len(),
        });
    }
    if bytes.len() as u64 > total {
        return Err(Error::BlockLengthMismatch {
            expected: total as usize,
            got: bytes.len(),
        });
    }
    let body_len = bytes.len() - KV_BLOCK_CHECKSUM_BYTES;
    let stored = u64::from_le_bytes(le_array(bytes, body_len));
    let computed = xxh3_64(&bytes[..body_len]);
    if stored != computed {
        return Err(Error::BlockChecksumMismatch { stored, computed });
    }

    // The bytes are as the sender wrote them; now check that the sender wrote a valid block.
    let dtype = KvElementType::from_code(dtype_code).ok_or(Error::InvalidBlockHeader {
        field: "dtype",
        value: dtype_code.into(),
    })?;
    let payload_layout =
        KvPayloadLayout::from_code(layout_code).ok_or(Error::InvalidBlockHeader {
            field: "payload_layout",
            value: layout_code.into(),
        })?;
    if flags & !FLAG_HAS_PARENT != 0 {
        return Err(Error::InvalidBlockHeader {
            field: "flags",
            value: flags.into(),
        });
    }
    for (field, value) in [
        ("n_layers", n_layers),
        ("n_kv_heads", n_kv_heads),
        ("head_dim", head_dim),
        ("block_size_tokens", block_size_tokens),
    ] {
        if value == 0 {
            return Err(Error::InvalidBlockHeader {
                field,
                value: value.into(),
            });
        }
    }
    let layout = KvBlockLayout {
        model_fingerprint,
        n_layers,
        n_kv_heads,
        head_dim,
        block_size_tokens,
        dtype,
        payload_layout,
    };
    if layout.payload_bytes().map(|n| n as u64) != Some(declared_payload) {
        return Err(Error::InvalidBlockHeader {
            field: "payload_bytes",
            value: declared_payload,
        });
    }
    let parent_hash = (flags & FLAG_HAS_PARENT != 0).then_some(parent_raw);
    let tokens_end = KV_BLOCK_HEADER_BYTES + block_size_tokens as usize * 4;
    let token_ids: Vec<u32> = bytes[KV_BLOCK_HEADER_BYTES..tokens_end]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let local_hash = local_block_hash(&token_ids);
    let chained = chain_hash(parent_hash, local_hash);
    if chained != sequence_hash {
        return Err(Error::BlockHashMismatch {
            claimed: sequence_hash,
            computed: chained,
        });
    }
    Ok(KvBlockView {
        header: KvBlockHeader {
            layout,
            sequence_hash,
            parent_hash,
        },
        token_ids,
        local_hash,
        payload: &bytes[tokens_end..body_len],
    })
}

/// [`decode_kv_block`], then refuses a block whose layout is not `expected` (naming the field).
pub fn decode_kv_block_expecting<'a>(
    bytes: &'a [u8],
    expected: &KvBlockLayout,
) -> Result<KvBlockView<'a>, Error> {
    let view = decode_kv_block(bytes)?;
    expected.check_matches(&view.header.layout)?;
    Ok(view)
}

/// `N` bytes at `at`; the caller has checked the length.
fn le_array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N]
        .try_into()
        .expect("invariant: the caller checked the length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> KvBlockLayout {
        KvBlockLayout {
            model_fingerprint: model_fingerprint(b"test"),
            n_layers: 2,
            n_kv_heads: 1,
            head_dim: 2,
            block_size_tokens: 4,
            dtype: KvElementType::F16,
            payload_layout: KvPayloadLayout::LayerKvHeadSlot,
        }
    }

    #[test]
    fn header_is_sixty_four_bytes_and_sizes_add_up() {
        let l = layout();
        assert_eq!(l.payload_bytes(), Some(2 * 2 * 2 * 4 * 2));
        let header = KvBlockHeader {
            layout: l,
            sequence_hash: local_block_hash(&[1, 2, 3, 4]),
            parent_hash: None,
        };
        let mut out = vec![0xAA];
        encode_kv_block(&header, &[1, 2, 3, 4], &[7; 64], &mut out).unwrap();
        assert_eq!(out.len() - 1, l.encoded_bytes().unwrap());
        assert_eq!(&out[1..9], b"RTRKVBLK");
        assert_eq!(out.len() - 1, 64 + 16 + 64 + 8);
    }

    #[test]
    fn a_short_payload_leaves_the_buffer_unchanged() {
        let header = KvBlockHeader {
            layout: layout(),
            sequence_hash: 1,
            parent_hash: None,
        };
        let mut out = vec![1, 2, 3];
        let err = encode_kv_block(&header, &[1, 2, 3, 4], &[0; 63], &mut out).unwrap_err();
        assert_eq!(
            err,
            Error::BlockContentMismatch {
                what: "payload bytes",
                expected: 64,
                got: 63
            }
        );
        assert_eq!(out, vec![1, 2, 3]);
    }
}
