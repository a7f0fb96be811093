//! Splitting a `COPY ... TO STDOUT` text stream into rows. PostgreSQL sends one CopyData
//! message per row, but the protocol does not promise it, so rows are reassembled from whatever
//! chunks arrive. In COPY text format a newline inside a value is escaped (`\n`), so a raw
//! newline always ends a row.

/// Reassembles rows from chunks.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// A splitter with nothing pending.
    pub fn new() -> LineSplitter {
        LineSplitter::default()
    }

    /// Feeds one chunk; calls `row` with every complete row (without its newline).
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut row: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = chunk;
        if !self.partial.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&rest[..i]);
                    let line = std::mem::take(&mut self.partial);
                    row(&line)?;
                    rest = &rest[i + 1..];
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    return Ok(());
                }
            }
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            row(&rest[..i])?;
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// True when bytes after the last newline are waiting (a stream that ends here was cut).
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
        let mut s = LineSplitter::new();
        let mut rows = Vec::new();
        for c in chunks {
            s.feed::<()>(c, |r| {
                rows.push(r.to_vec());
                Ok(())
            })
            .unwrap();
        }
        (rows, s.has_partial())
    }

    #[test]
    fn rows_across_any_chunking() {
        let whole: &[u8] = b"1\ta\n2\t\\N\n\n3\tc\\nd\n";
        let expected = vec![
            b"1\ta".to_vec(),
            b"2\t\\N".to_vec(),
            b"".to_vec(),
            b"3\tc\\nd".to_vec(),
        ];
        assert_eq!(split(&[whole]), (expected.clone(), false));
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(split(&[a, b]), (expected.clone(), false), "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(split(&bytes), (expected, false));
        assert!(split(&[b"1\ta\n2\t"]).1);
    }
}
