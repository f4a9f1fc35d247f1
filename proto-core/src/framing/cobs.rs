//! Consistent Overhead Byte Stuffing: removes every `0x00` so it can delimit frames.

/// Largest COBS encoding of `len` bytes (without the delimiter).
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Encodes `input` into `out`, returning the encoded length, or `None` if `out` is too small.
pub fn encode(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut encoder = Encoder::new(out);
    input.iter().try_for_each(|&b| encoder.push(b))?;
    encoder.finish()
}

/// A streaming COBS encoder into a slice, so data from several places can be
/// encoded as one run without first copying it together.
pub struct Encoder<'o> {
    out: &'o mut [u8],
    code_at: usize,
    write: usize,
    code: u8,
}

impl<'o> Encoder<'o> {
    /// An encoder writing into `out`.
    pub fn new(out: &'o mut [u8]) -> Self {
        Encoder {
            out,
            code_at: 0,
            write: 1,
            code: 1,
        }
    }

    fn close_block(&mut self) -> Option<()> {
        *self.out.get_mut(self.code_at)? = self.code;
        self.code_at = self.write;
        self.write += 1;
        self.code = 1;
        Some(())
    }

    /// Adds one byte; `None` when `out` is full.
    pub fn push(&mut self, byte: u8) -> Option<()> {
        if byte == 0 {
            return self.close_block();
        }
        *self.out.get_mut(self.write)? = byte;
        self.write += 1;
        self.code += 1;
        if self.code == 0xFF {
            self.close_block()?;
        }
        Some(())
    }

    /// Ends the run and returns the encoded length; `None` when `out` is full.
    pub fn finish(self) -> Option<usize> {
        *self.out.get_mut(self.code_at)? = self.code;
        Some(self.write)
    }
}

/// Decodes `buf` in place (the encoding contains no `0x00`), returning the decoded length,
/// or `None` if it is not valid COBS.
pub fn decode_in_place(buf: &mut [u8]) -> Option<usize> {
    // `get`, not indexing: no panic path in the image (`write` never passes `read`).
    let mut read = 0;
    let mut write = 0;
    while let Some(&code) = buf.get(read) {
        let code = usize::from(code);
        if code == 0 || read + code > buf.len() {
            return None;
        }
        read += 1;
        for _ in 1..code {
            let byte = *buf.get(read)?;
            if byte == 0 {
                return None;
            }
            *buf.get_mut(write)? = byte;
            write += 1;
            read += 1;
        }
        if code != 0xFF && read < buf.len() {
            *buf.get_mut(write)? = 0;
            write += 1;
        }
    }
    Some(write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        let cases: [(&[u8], &[u8]); 4] = [
            (&[], &[1]),
            (&[0], &[1, 1]),
            (&[0x11, 0x22, 0x00, 0x33], &[3, 0x11, 0x22, 2, 0x33]),
            (&[0x11, 0, 0, 0], &[2, 0x11, 1, 1, 1]),
        ];
        for (raw, enc) in cases {
            let mut out = [0u8; 16];
            let n = encode(raw, &mut out).unwrap();
            assert_eq!(&out[..n], enc);
            let mut buf = out;
            assert_eq!(decode_in_place(&mut buf[..n]), Some(raw.len()));
            assert_eq!(&buf[..raw.len()], raw);
        }
    }

    proptest! {
        #[test]
        fn round_trip_has_no_zero_and_bounded_length(raw in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let mut out = std::vec![0u8; max_encoded_len(raw.len())];
            let n = encode(&raw, &mut out).unwrap();
            prop_assert!(!out[..n].contains(&0));
            let m = decode_in_place(&mut out[..n]).unwrap();
            prop_assert_eq!(&out[..m], &raw[..]);
        }

        #[test]
        fn decoding_garbage_never_panics(mut raw in proptest::collection::vec(1u8.., 0..600)) {
            let _ = decode_in_place(&mut raw);
        }
    }
}
