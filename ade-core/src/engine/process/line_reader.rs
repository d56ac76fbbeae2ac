//! Bounded line reading: a line longer than the limit is cut on a character boundary and the rest
//! of it discarded, so a process cannot make ade buffer without bound.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Reads lines of at most `max` bytes; the rest of a longer line is read and discarded.
#[derive(Debug)]
pub(super) struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(super) fn new(reader: R, max: usize) -> Self {
        Self { inner: BufReader::new(reader), max }
    }

    /// Reads the next line into `line` (without `\n` or a trailing `\r`); returns how many bytes
    /// of it were discarded, or `None` at the end of the stream. A line cut at `max` ends on a
    /// UTF-8 character boundary.
    pub(super) async fn next_line(&mut self, line: &mut Vec<u8>) -> io::Result<Option<usize>> {
        line.clear();
        let mut dropped = 0usize;
        let mut read_any = false;
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if !read_any {
                    return Ok(None);
                }
                break;
            }
            read_any = true;
            let (content, consumed, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            let take = content.len().min(self.max.saturating_sub(line.len()));
            line.extend_from_slice(&content[..take]);
            dropped += content.len() - take;
            self.inner.consume(consumed);
            if complete {
                break;
            }
        }
        if dropped == 0 {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        } else {
            dropped += trim_partial_char(line);
        }
        Ok(Some(dropped))
    }
}

/// Removes an incomplete UTF-8 sequence at the end of `bytes`; returns how many bytes went.
fn trim_partial_char(bytes: &mut Vec<u8>) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let byte = bytes[len - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: the lead is further back
        }
        let needed = match byte {
            b if b & 0x80 == 0 => 1,
            b if b & 0xE0 == 0xC0 => 2,
            b if b & 0xF0 == 0xE0 => 3,
            b if b & 0xF8 == 0xF0 => 4,
            _ => 1, // not UTF-8 at all: lossy conversion deals with it
        };
        if needed > back {
            bytes.truncate(len - back);
            return back;
        }
        return 0;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_line_reader_cuts_long_lines_on_a_character_boundary() {
        let input: &[u8] = b"ab\xc3\xa9cd\nshort\r\n\nlast";
        let mut reader = LineReader::new(input, 3);
        let mut line = Vec::new();
        // "ab" + the first byte of "é" fits in 3 bytes; the partial character goes too.
        assert_eq!(reader.next_line(&mut line).await.expect("read"), Some(4));
        assert_eq!(line, b"ab");
        assert_eq!(reader.next_line(&mut line).await.expect("read"), Some(3));
        assert_eq!(line, b"sho");
        assert_eq!(reader.next_line(&mut line).await.expect("read"), Some(0));
        assert_eq!(line, b"");
        assert_eq!(reader.next_line(&mut line).await.expect("read"), Some(1));
        assert_eq!(line, b"las");
        assert_eq!(reader.next_line(&mut line).await.expect("read"), None);
        let mut reader = LineReader::new(&b"x\r\n"[..], 10);
        assert_eq!(reader.next_line(&mut line).await.expect("read"), Some(0));
        assert_eq!(line, b"x");
    }
}
