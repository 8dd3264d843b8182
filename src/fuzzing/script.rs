//! A tiny byte-script format for the structure-aware targets, and its writer for the seed corpus.
//!
//! A script is a sequence of operations: an opcode byte followed by the operation's fields, each either
//! one byte, a big-endian `u16`, or a byte string (`u16` big-endian length, clamped to what is left, then
//! the bytes). Reading never fails: past the end every field reads as zero or empty, so every input is
//! a valid script and mutations of a seed stay close to it (libFuzzer's mutators then work on fields,
//! not on an encoding they would have to rediscover, as with `arbitrary`'s length-prefixed layout).

/// Reads a script (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Script<'a> {
    data: &'a [u8],
}

impl<'a> Script<'a> {
    /// A script over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Script { data }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// A big-endian `u16` (missing bytes read as 0).
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// A byte string: `u16` length, clamped to what is left, then the bytes.
    pub fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16()).min(self.data.len());
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        b
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }
}

/// Writes a script (for seed corpora): the inverse of [`Script`].
#[derive(Debug, Clone, Default)]
pub struct ScriptWriter {
    out: Vec<u8>,
}

impl ScriptWriter {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append one byte.
    pub fn byte(&mut self, b: u8) -> &mut Self {
        self.out.push(b);
        self
    }

    /// Append a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Append a byte string (at most `u16::MAX` bytes; longer ones are truncated).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let b = &b[..b.len().min(usize::from(u16::MAX))];
        self.u16(b.len() as u16);
        self.out.extend_from_slice(b);
        self
    }

    /// Append raw bytes.
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }

    /// The script.
    pub fn finish(&self) -> Vec<u8> {
        self.out.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_reader_agree_and_reading_past_the_end_is_zero() {
        let s = ScriptWriter::new()
            .byte(7)
            .u16(513)
            .bytes(b"abc")
            .raw(&[0, 9, 1])
            .finish();
        let mut r = Script::new(&s);
        assert_eq!((r.byte(), r.u16(), r.bytes()), (7, 513, &b"abc"[..]));
        // A length past the end is clamped.
        assert_eq!(r.bytes(), &[1u8][..]);
        assert!(r.is_empty());
        assert_eq!((r.byte(), r.u16(), r.bytes()), (0, 0, &[][..]));
    }
}
