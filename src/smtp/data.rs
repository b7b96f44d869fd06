//! Message data on its way through: the end of a DATA message found in the
//! raw stream (smtp-proto's receiver, without copying the message), and
//! dot-stuffing for a BDAT message sent on as DATA to a server without
//! CHUNKING. Both work on pieces of any size, so a message of any size
//! passes with one buffer.

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};

/// Finds `CRLF . CRLF` across pieces of a DATA stream.
pub struct DataEnd {
    receiver: DummyDataReceiver,
}

impl Default for DataEnd {
    fn default() -> Self {
        // The data begins at the start of a line: an empty message is just
        // ".\r\n". The receiver starts mid-line, so it is shown a line end.
        let mut data = DataReceiver::new();
        data.ingest(&mut b"\r\n".iter(), &mut Vec::new());
        DataEnd {
            receiver: DummyDataReceiver::new_data(&data),
        }
    }
}

impl DataEnd {
    /// How many bytes of `piece` belong to the message (the terminator
    /// included), and whether the message ends there.
    pub fn scan(&mut self, piece: &[u8]) -> (usize, bool) {
        let mut rest = piece.iter();
        let done = self.receiver.ingest(&mut rest);
        (piece.len() - rest.as_slice().len(), done)
    }
}

/// Dot-stuffs a message given in pieces (RFC 5321 4.5.2): a `.` that
/// starts a line gets another in front. A line starts after any LF, so a
/// server that takes a bare LF as a line end cannot see an early end.
pub struct DotStuffer {
    line_start: bool,
    last_two: [u8; 2],
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            line_start: true,
            last_two: *b"\r\n",
        }
    }
}

impl DotStuffer {
    /// Appends `piece`, stuffed, to `out`.
    pub fn stuff(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        let mut from = 0;
        for i in memchr::memchr_iter(b'.', piece) {
            let at_start = if i == 0 {
                self.line_start
            } else {
                piece[i - 1] == b'\n'
            };
            if at_start {
                out.extend_from_slice(&piece[from..i]);
                out.push(b'.');
                from = i;
            }
        }
        out.extend_from_slice(&piece[from..]);
        if let Some(&last) = piece.last() {
            self.line_start = last == b'\n';
            self.last_two = [
                piece
                    .len()
                    .checked_sub(2)
                    .map_or(self.last_two[1], |i| piece[i]),
                last,
            ];
        }
    }

    /// The end of the message: a line end if the data lacked one, then
    /// the `.` line.
    pub fn finish(&self, out: &mut Vec<u8>) {
        if self.last_two != *b"\r\n" {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(pieces: &[&[u8]]) -> Option<usize> {
        let mut end = DataEnd::default();
        let mut total = 0;
        for p in pieces {
            let (n, done) = end.scan(p);
            total += n;
            if done {
                return Some(total);
            }
            assert_eq!(n, p.len());
        }
        None
    }

    #[test]
    fn the_end_is_found_across_pieces_and_stuffed_dots_are_not_it() {
        assert_eq!(scan_all(&[b"a\r\n..b\r\n.\r\nMAIL"]), Some(11));
        assert_eq!(scan_all(&[b"a\r", b"\n", b".", b"\r", b"\nRSET"]), Some(6));
        assert_eq!(scan_all(&[b".\r\n"]), Some(3));
        assert_eq!(scan_all(&[b"a\r\n..\r\n"]), None);
        assert_eq!(scan_all(&[b"a\n.\nb"]), None);
    }

    #[test]
    fn stuffing_doubles_leading_dots_in_any_piece() {
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        s.stuff(b".a\r\nb.\r", &mut out);
        s.stuff(b"\n.c\n", &mut out);
        s.stuff(b".", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"..a\r\nb.\r\n..c\n..\r\n.\r\n");
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        s.stuff(b"x\r\n", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"x\r\n.\r\n");
    }
}
