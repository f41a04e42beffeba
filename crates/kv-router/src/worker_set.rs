//! `WorkerSet`: which worker slots hold one block, as a bitset that stays inline (8 bytes of
//! payload, no allocation) while every slot is below 64, the common case by far.

/// Bits per word.
pub(crate) const WORD_BITS: usize = 64;

/// Words needed for `slots` slots (at least one).
pub(crate) fn words_for(slots: usize) -> usize {
    slots.div_ceil(WORD_BITS).max(1)
}

/// A set of dense worker slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WorkerSet {
    Inline(u64),
    Wide(Box<[u64]>),
}

impl Default for WorkerSet {
    fn default() -> Self {
        WorkerSet::Inline(0)
    }
}

impl WorkerSet {
    /// Word `i` of the bitset (0 past the end).
    #[inline]
    pub fn word(&self, i: usize) -> u64 {
        match self {
            WorkerSet::Inline(bits) => {
                if i == 0 {
                    *bits
                } else {
                    0
                }
            }
            WorkerSet::Wide(words) => words.get(i).copied().unwrap_or(0),
        }
    }

    pub fn contains(&self, slot: usize) -> bool {
        self.word(slot / WORD_BITS) & (1 << (slot % WORD_BITS)) != 0
    }

    /// Adds `slot`; returns whether it was absent.
    pub fn insert(&mut self, slot: usize) -> bool {
        let (w, bit) = (slot / WORD_BITS, 1u64 << (slot % WORD_BITS));
        match self {
            WorkerSet::Inline(bits) if w == 0 => {
                let absent = *bits & bit == 0;
                *bits |= bit;
                absent
            }
            WorkerSet::Inline(bits) => {
                let mut words = vec![0u64; w + 1];
                words[0] = *bits;
                words[w] = bit;
                *self = WorkerSet::Wide(words.into_boxed_slice());
                true
            }
            WorkerSet::Wide(words) => {
                if w >= words.len() {
                    let mut grown = vec![0u64; w + 1];
                    grown[..words.len()].copy_from_slice(words);
                    *words = grown.into_boxed_slice();
                }
                let absent = words[w] & bit == 0;
                words[w] |= bit;
                absent
            }
        }
    }

    /// Removes `slot`; returns whether it was present.
    pub fn remove(&mut self, slot: usize) -> bool {
        let (w, bit) = (slot / WORD_BITS, 1u64 << (slot % WORD_BITS));
        let word = match self {
            WorkerSet::Inline(bits) if w == 0 => bits,
            WorkerSet::Inline(_) => return false,
            WorkerSet::Wide(words) => match words.get_mut(w) {
                Some(word) => word,
                None => return false,
            },
        };
        let present = *word & bit != 0;
        *word &= !bit;
        present
    }

    pub fn is_empty(&self) -> bool {
        match self {
            WorkerSet::Inline(bits) => *bits == 0,
            WorkerSet::Wide(words) => words.iter().all(|w| *w == 0),
        }
    }
}

/// Calls `f(slot)` for every set bit of `word`, the word at index `word_index`.
#[inline]
pub(crate) fn for_each_slot(word_index: usize, mut word: u64, mut f: impl FnMut(usize)) {
    while word != 0 {
        let bit = word.trailing_zeros() as usize;
        f(word_index * WORD_BITS + bit);
        word &= word - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(set: &WorkerSet, words: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for i in 0..words {
            for_each_slot(i, set.word(i), |s| out.push(s));
        }
        out
    }

    #[test]
    fn stays_inline_below_64_and_widens_above() {
        let mut set = WorkerSet::default();
        assert!(set.insert(3));
        assert!(!set.insert(3));
        assert!(set.insert(63));
        assert!(matches!(set, WorkerSet::Inline(_)));
        assert!(set.insert(130));
        assert!(matches!(set, WorkerSet::Wide(_)));
        assert_eq!(slots(&set, 3), vec![3, 63, 130]);
        assert!(set.contains(130) && set.contains(3) && !set.contains(64));
        assert!(set.remove(3));
        assert!(!set.remove(3));
        assert!(!set.remove(500));
        assert!(set.remove(63) && set.remove(130));
        assert!(set.is_empty());
    }
}
