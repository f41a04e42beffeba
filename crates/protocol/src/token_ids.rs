//! [`TokenIds`]: the token ids of one engine output. An engine emits one token per sequence per
//! step, so up to [`INLINE`] ids live inline and a step's outputs cost no heap allocation; more
//! spill to a `Vec`. Serializes as a plain JSON array.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Ids held without allocating.
pub const INLINE: usize = 3;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, ids: [u32; INLINE] },
    Heap(Vec<u32>),
}

/// A short list of token ids; derefs to `[u32]`.
#[derive(Clone)]
pub struct TokenIds(Repr);

impl TokenIds {
    /// No ids.
    pub const fn new() -> Self {
        Self(Repr::Inline {
            len: 0,
            ids: [0; INLINE],
        })
    }

    /// One id, inline.
    pub const fn one(id: u32) -> Self {
        Self(Repr::Inline {
            len: 1,
            ids: [id, 0, 0],
        })
    }

    /// The ids as a slice.
    pub fn as_slice(&self) -> &[u32] {
        match &self.0 {
            Repr::Inline { len, ids } => &ids[..*len as usize],
            Repr::Heap(v) => v,
        }
    }

    /// Appends `more`, spilling to the heap past [`INLINE`] ids.
    pub fn extend_from_slice(&mut self, more: &[u32]) {
        match &mut self.0 {
            Repr::Inline { len, ids } if *len as usize + more.len() <= INLINE => {
                let at = *len as usize;
                ids[at..at + more.len()].copy_from_slice(more);
                *len += more.len() as u8;
            }
            Repr::Inline { len, ids } => {
                let mut v = Vec::with_capacity(*len as usize + more.len());
                v.extend_from_slice(&ids[..*len as usize]);
                v.extend_from_slice(more);
                self.0 = Repr::Heap(v);
            }
            Repr::Heap(v) => v.extend_from_slice(more),
        }
    }

    /// Appends one id.
    pub fn push(&mut self, id: u32) {
        self.extend_from_slice(&[id]);
    }

    /// The ids as a `Vec`.
    pub fn to_vec(&self) -> Vec<u32> {
        self.as_slice().to_vec()
    }
}

impl Default for TokenIds {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for TokenIds {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        self.as_slice()
    }
}

impl From<Vec<u32>> for TokenIds {
    fn from(v: Vec<u32>) -> Self {
        if v.len() <= INLINE {
            let mut t = Self::new();
            t.extend_from_slice(&v);
            t
        } else {
            Self(Repr::Heap(v))
        }
    }
}

impl From<&[u32]> for TokenIds {
    fn from(s: &[u32]) -> Self {
        let mut t = Self::new();
        t.extend_from_slice(s);
        t
    }
}

impl<const N: usize> From<[u32; N]> for TokenIds {
    fn from(a: [u32; N]) -> Self {
        Self::from(&a[..])
    }
}

impl FromIterator<u32> for TokenIds {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        let mut t = Self::new();
        for id in iter {
            t.push(id);
        }
        t
    }
}

impl Extend<u32> for TokenIds {
    fn extend<I: IntoIterator<Item = u32>>(&mut self, iter: I) {
        for id in iter {
            self.push(id);
        }
    }
}

impl IntoIterator for TokenIds {
    type Item = u32;
    type IntoIter = std::vec::IntoIter<u32>;
    fn into_iter(self) -> Self::IntoIter {
        match self.0 {
            Repr::Heap(v) => v.into_iter(),
            inline => TokenIds(inline).to_vec().into_iter(),
        }
    }
}

impl<'a> IntoIterator for &'a TokenIds {
    type Item = &'a u32;
    type IntoIter = std::slice::Iter<'a, u32>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl PartialEq for TokenIds {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for TokenIds {}

impl PartialEq<Vec<u32>> for TokenIds {
    fn eq(&self, other: &Vec<u32>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<[u32]> for TokenIds {
    fn eq(&self, other: &[u32]) -> bool {
        self.as_slice() == other
    }
}

impl<const N: usize> PartialEq<[u32; N]> for TokenIds {
    fn eq(&self, other: &[u32; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl fmt::Debug for TokenIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Serialize for TokenIds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for TokenIds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u32>::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_then_heap_keeps_every_id_in_order() {
        let mut t = TokenIds::one(7);
        assert!(matches!(t.0, Repr::Inline { len: 1, .. }));
        t.extend_from_slice(&[8, 9]);
        assert!(matches!(t.0, Repr::Inline { len: 3, .. }));
        t.push(10);
        assert!(matches!(t.0, Repr::Heap(_)));
        assert_eq!(t, vec![7, 8, 9, 10]);
        assert_eq!(t.into_iter().collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        assert_eq!(TokenIds::from(vec![1, 2]), [1, 2]);
        assert!(TokenIds::new().is_empty());
    }

    #[test]
    fn serializes_as_a_plain_array() {
        for ids in [vec![], vec![5], vec![1, 2, 3, 4, 5]] {
            let t = TokenIds::from(ids.clone());
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, serde_json::to_string(&ids).unwrap());
            let back: TokenIds = serde_json::from_str(&json).unwrap();
            assert_eq!(back, ids);
        }
    }
}
