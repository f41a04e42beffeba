//! The GPT-2 byte-level alphabet: every byte is written as one printable char in the vocabulary.
//!
//! Printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the remaining 68
//! bytes (controls, space, DEL, NBSP, soft hyphen) are mapped in increasing order to U+0100,
//! U+0101, ... so that no vocabulary entry contains whitespace or control characters.

/// Maps vocabulary chars back to the bytes they stand for.
#[derive(Debug, Clone)]
pub(crate) struct ByteLevelAlphabet {
    /// Indexed by the char's code point; only code points below 0x144 are ever used.
    char_to_byte: Vec<Option<u8>>,
}

fn stands_for_itself(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

impl ByteLevelAlphabet {
    pub(crate) fn new() -> ByteLevelAlphabet {
        let mut char_to_byte = vec![None; 0x100 + 68];
        let mut next_shifted = 0x100usize;
        for byte in 0..=255u8 {
            if stands_for_itself(byte) {
                char_to_byte[byte as usize] = Some(byte);
            } else {
                char_to_byte[next_shifted] = Some(byte);
                next_shifted += 1;
            }
        }
        ByteLevelAlphabet { char_to_byte }
    }

    /// Appends the bytes a vocabulary string stands for. Chars outside the alphabet (which a
    /// well-formed byte-level vocabulary never contains) are copied as their own UTF-8.
    pub(crate) fn decode_into(&self, piece: &str, out: &mut Vec<u8>) {
        for ch in piece.chars() {
            match self.char_to_byte.get(ch as usize).copied().flatten() {
                Some(byte) => out.push(byte),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_newline_and_letters_map_like_gpt2() {
        let alphabet = ByteLevelAlphabet::new();
        let mut out = Vec::new();
        // 'Ġ' (U+0120) is space, 'Ċ' (U+010A) is newline, 'ĉ' (U+0109) is tab in GPT-2's table.
        alphabet.decode_into("ĠhelloĊĉA", &mut out);
        assert_eq!(out, b" hello\n\tA");
    }

    #[test]
    fn every_byte_has_exactly_one_char() {
        let alphabet = ByteLevelAlphabet::new();
        let mut seen = [0usize; 256];
        for byte in alphabet.char_to_byte.iter().flatten() {
            seen[*byte as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n == 1));
    }
}
