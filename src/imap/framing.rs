//! Cutting an IMAP byte stream into lines, literals and messages, without I/O.
//!
//! Line decisions (where a line ends, whether it announces a literal of how
//! many bytes, in which mode) are made by imap-codec's [`Fragmentizer`]: each
//! complete line is handed to it and its verdict is taken as is. Literal
//! bytes do not go through it: the fragmentizer moves every byte through a
//! `VecDeque` one at a time, which measured at under 40% of direct
//! throughput on the proxy's plain path. Here the socket reads straight into
//! the message buffer and a literal is only counted, never copied.
//!
//! The buffer holds the current message followed by bytes already read but
//! not yet framed. The size limit is enforced before a literal is read, and
//! as a line grows, so memory stays bounded and no byte is ever dropped.
//!
//! `tests::same_framing_as_the_fragmentizer` checks, on random streams, that
//! this framer and a plain `Fragmentizer` agree on every fragment.

use std::ops::Range;

use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};

/// The most free space offered to one read (beyond a literal that is due):
/// a bulk transfer reads in chunks this large.
pub const READ_CHUNK: usize = 64 * 1024;

/// The least, and where the offer starts: an idle connection's buffer is
/// this small. Measured with 200 idle sessions, buffers that always kept
/// [`READ_CHUNK`] free held 39 MB of giftlock's 54 MB heap.
pub const MIN_READ: usize = 4 * 1024;

/// The message is larger than the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// Bytes the message has at least.
    pub size: u64,
    pub limit: u32,
}

/// One fragment of the current message, by its range in [`Framer::message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fragment {
    Line {
        range: Range<usize>,
        announcement: Option<LiteralAnnouncement>,
    },
    Literal {
        range: Range<usize>,
    },
}

impl Fragment {
    pub fn range(&self) -> Range<usize> {
        match self {
            Fragment::Line { range, .. } | Fragment::Literal { range } => range.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Line,
    Literal(usize),
}

pub struct Framer {
    classifier: Fragmentizer,
    /// `buf[start..start + parsed]` is the current message so far;
    /// `buf[start + parsed..]` is read but not yet framed. Reads append to
    /// its spare capacity, which is never zero-filled: an idle
    /// connection's buffer costs address space, not resident memory.
    buf: Vec<u8>,
    start: usize,
    parsed: usize,
    expect: Expect,
    complete: bool,
    limit: u32,
    /// Ranges of the current message's literal data, in order.
    literals: Vec<Range<usize>>,
    /// Free space the next read is offered, between [`MIN_READ`] and
    /// [`READ_CHUNK`]: it doubles when a read fills it and halves when a
    /// read takes under a quarter of it ([`Framer::note_read`]).
    offer: usize,
}

impl Framer {
    pub fn new(limit: u32) -> Self {
        Framer {
            classifier: Fragmentizer::without_max_message_size(),
            buf: Vec::new(),
            start: 0,
            parsed: 0,
            expect: Expect::Line,
            complete: false,
            limit,
            literals: Vec::new(),
            offer: MIN_READ,
        }
    }

    /// Changes the size limit for what follows.
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = limit;
    }

    /// The buffer the next read appends to (`Vec::extend_from_slice`,
    /// tokio's `read_buf`): its spare capacity is at least the current
    /// offer, and the rest of a literal when one is due, so a large literal
    /// arrives in place in few reads. Appended bytes are framed by the next
    /// [`Framer::next_fragment`]; nothing else may change the buffer.
    pub fn read_target(&mut self) -> &mut Vec<u8> {
        if self.complete {
            self.start_next_message();
        }
        // Move the current message and the unframed bytes to the front
        // when that frees at least half the buffer: each byte moves a
        // bounded number of times.
        if self.start > 0 && self.start >= self.buf.capacity() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let due = match self.expect {
            Expect::Literal(n) => n.saturating_sub(self.unframed().len()),
            Expect::Line => 0,
        };
        let want = due.max(self.offer);
        // A connection in a bulk transfer keeps up to 1 MiB for the next
        // message; once it went quiet (its offer fell), an empty buffer
        // keeps no more than its reads need.
        let bulk = self.offer == READ_CHUNK;
        if !bulk && self.buf.is_empty() && self.buf.capacity() > 2 * want {
            self.buf = Vec::new();
        } else if self.start == 0
            && self.buf.len() <= READ_CHUNK
            && self.buf.capacity() > 16 * READ_CHUNK
        {
            self.buf.shrink_to(2 * READ_CHUNK);
        }
        // Only when the free space is short of what the read wants: a
        // reserve on a partly filled buffer would double it each time.
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        &mut self.buf
    }

    /// Tells the framer that a read appended `n` bytes to what
    /// [`Framer::read_target`] offered: a read that filled the offer asks
    /// for twice as much next time (a bulk transfer), one that took under a
    /// quarter of it for half (a quiet connection).
    pub fn note_read(&mut self, n: usize) {
        if n >= self.offer {
            self.offer = (2 * self.offer).min(READ_CHUNK);
        } else if n < self.offer / 4 {
            self.offer = (self.offer / 2).max(MIN_READ);
        }
    }

    /// Frames the next fragment from what has been read, if it is all there.
    pub fn next_fragment(&mut self) -> Result<Option<Fragment>, TooLarge> {
        if self.complete {
            self.start_next_message();
        }
        let from = self.parsed;
        match self.expect {
            Expect::Literal(len) => {
                if self.unframed().len() < len {
                    return Ok(None);
                }
                self.parsed += len;
                self.expect = Expect::Line;
                self.literals.push(from..self.parsed);
                Ok(Some(Fragment::Literal {
                    range: from..self.parsed,
                }))
            }
            Expect::Line => {
                let Some(eol) = memchr::memchr(b'\n', self.unframed()) else {
                    let size = (self.parsed + self.unframed().len()) as u64;
                    return match size > u64::from(self.limit) {
                        true => Err(TooLarge {
                            size,
                            limit: self.limit,
                        }),
                        false => Ok(None),
                    };
                };
                let line_end = self.start + self.parsed + eol + 1;
                let announcement = self.classify(self.start + self.parsed..line_end);
                self.parsed += eol + 1;
                let size = self.parsed as u64 + announcement.map_or(0, |a| u64::from(a.length));
                if size > u64::from(self.limit) {
                    return Err(TooLarge {
                        size,
                        limit: self.limit,
                    });
                }
                match announcement {
                    Some(a) => self.expect = Expect::Literal(a.length as usize),
                    None => self.complete = true,
                }
                Ok(Some(Fragment::Line {
                    range: from..self.parsed,
                    announcement,
                }))
            }
        }
    }

    /// Asks the fragmentizer whether this complete line announces a literal.
    fn classify(&mut self, line: Range<usize>) -> Option<LiteralAnnouncement> {
        self.classifier.enqueue_bytes(&self.buf[line]);
        let verdict = match self.classifier.progress() {
            Some(FragmentInfo::Line { announcement, .. }) => announcement,
            // A complete line always yields a line fragment.
            _ => None,
        };
        // The literal is framed here, not by the fragmentizer.
        self.classifier.skip_message();
        verdict
    }

    /// The current message so far (all of it once complete).
    pub fn message(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.parsed]
    }

    pub fn is_message_complete(&self) -> bool {
        self.complete
    }

    /// Where the current message's literal data is, in order.
    pub fn literals(&self) -> &[Range<usize>] {
        &self.literals
    }

    /// Whether bytes beyond the current fragment have been read already.
    pub fn has_unframed(&self) -> bool {
        !self.unframed().is_empty()
    }

    /// Whether part of a message has been framed or read.
    pub fn is_mid_message(&self) -> bool {
        !self.complete && (self.parsed > 0 || !self.unframed().is_empty())
    }

    /// Drops the rest of the current message after a refused synchronising
    /// literal: the peer will not send it, so what follows is a new message.
    pub fn skip_message(&mut self) {
        self.expect = Expect::Line;
        self.complete = true;
    }

    /// Bytes read but not framed yet.
    fn unframed(&self) -> &[u8] {
        &self.buf[self.start + self.parsed..]
    }

    fn start_next_message(&mut self) {
        self.start += self.parsed;
        self.parsed = 0;
        self.complete = false;
        self.literals.clear();
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `input` in pieces of `chunk` bytes and collects every fragment
    /// as (is_literal, bytes, announcement) plus message boundaries.
    fn frame_ours(
        input: &[u8],
        chunk: usize,
    ) -> Vec<(bool, Vec<u8>, Option<LiteralAnnouncement>, bool)> {
        let mut framer = Framer::new(u32::MAX);
        let mut fed = 0;
        let mut out = Vec::new();
        loop {
            match framer.next_fragment().unwrap() {
                Some(f) => {
                    let bytes = framer.message()[f.range()].to_vec();
                    let (lit, ann) = match &f {
                        Fragment::Line { announcement, .. } => (false, *announcement),
                        Fragment::Literal { range } => {
                            // Every literal is listed for its message.
                            assert_eq!(framer.literals().last(), Some(range));
                            (true, None)
                        }
                    };
                    out.push((lit, bytes, ann, framer.is_message_complete()));
                }
                None if fed < input.len() => {
                    let n = chunk.min(input.len() - fed);
                    framer.read_target().extend_from_slice(&input[fed..fed + n]);
                    fed += n;
                }
                None => return out,
            }
        }
    }

    fn frame_reference(input: &[u8]) -> Vec<(bool, Vec<u8>, Option<LiteralAnnouncement>, bool)> {
        let mut f = Fragmentizer::without_max_message_size();
        f.enqueue_bytes(input);
        let mut out = Vec::new();
        while let Some(info) = f.progress() {
            let bytes = f.fragment_bytes(info).to_vec();
            let (lit, ann) = match info {
                FragmentInfo::Line { announcement, .. } => (false, announcement),
                FragmentInfo::Literal { .. } => (true, None),
            };
            out.push((lit, bytes, ann, f.is_message_complete()));
        }
        out
    }

    fn imap_piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "[ -~]{0,40}\r\n".prop_map(String::into_bytes),
            "[ -~]{0,10}\n".prop_map(String::into_bytes),
            (
                proptest::collection::vec(any::<u8>(), 0..300),
                prop_oneof![Just(""), Just("+"), Just("~")]
            )
                .prop_map(|(lit, kind)| {
                    let (pre, plus) = if kind == "~" { ("~", "") } else { ("", kind) };
                    let mut v =
                        format!("* 1 FETCH (BODY[] {pre}{{{}{plus}}}\r\n", lit.len()).into_bytes();
                    v.extend_from_slice(&lit);
                    v.extend_from_slice(b")\r\n");
                    v
                }),
            Just(b"a LOGIN {3}\r\nabc {2}\r\nxy\r\n".to_vec()),
            Just(b"x {99999999999999999999}\r\n".to_vec()),
        ]
    }

    proptest! {
        #[test]
        fn same_framing_as_the_fragmentizer(pieces in proptest::collection::vec(imap_piece(), 1..20), chunk in 1usize..200) {
            let input: Vec<u8> = pieces.concat();
            prop_assert_eq!(frame_ours(&input, chunk), frame_reference(&input));
        }
    }

    #[test]
    fn each_message_lists_its_own_literals() {
        let input = b"* 1 FETCH (BODY[1] {2}\r\nab BODY[2] {3}\r\ncde)\r\n* 2 EXISTS\r\n";
        let mut framer = Framer::new(u32::MAX);
        framer.read_target().extend_from_slice(input);
        while !framer.is_message_complete() {
            framer.next_fragment().unwrap();
        }
        let message = framer.message();
        let literals: Vec<&[u8]> = framer
            .literals()
            .iter()
            .map(|r| &message[r.clone()])
            .collect();
        assert_eq!(literals, [&b"ab"[..], &b"cde"[..]]);
        framer.next_fragment().unwrap();
        assert!(framer.literals().is_empty(), "the next message has none");
    }

    #[test]
    fn literal_bytes_land_in_place_and_messages_follow() {
        let input = b"* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\na OK done\r\n";
        let got = frame_ours(input, 7);
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].1, b"ab\r\nc");
        assert!(got[2].3, "message complete after the closing line");
        assert_eq!(got[3].1, b"a OK done\r\n");
    }

    #[test]
    fn limits_are_checked_before_buffering() {
        let mut framer = Framer::new(100);
        let line = b"* 1 FETCH (BODY[] {5000}\r\n";
        framer.read_target().extend_from_slice(line);
        assert_eq!(
            framer.next_fragment(),
            Err(TooLarge {
                size: 5026,
                limit: 100
            })
        );

        let mut framer = Framer::new(100);
        framer.read_target().extend_from_slice(&[b'x'; 150]);
        assert!(matches!(
            framer.next_fragment(),
            Err(TooLarge { size: 150, .. })
        ));
    }

    #[test]
    fn the_buffer_shrinks_back_after_a_large_literal() {
        let mut framer = Framer::new(u32::MAX);
        let big = 4 * 1024 * 1024;
        let mut message = format!("* 1 FETCH (BODY[] {{{big}}}\r\n").into_bytes();
        message.resize(message.len() + big, b'x');
        message.extend_from_slice(b")\r\n");
        framer.read_target().extend_from_slice(&message);
        while !framer.is_message_complete() {
            framer.next_fragment().unwrap().unwrap();
        }
        assert_eq!(framer.message().len(), message.len());
        assert!(framer.buf.capacity() >= big);
        framer.read_target().extend_from_slice(b"a OK done\r\n");
        framer.next_fragment().unwrap().unwrap();
        assert_eq!(framer.message(), b"a OK done\r\n");
        framer.read_target();
        assert!(
            framer.buf.capacity() <= 4 * READ_CHUNK,
            "{} bytes kept",
            framer.buf.capacity()
        );
    }

    /// One read: `take` gets the free space offered and gives the bytes
    /// the read appends; the framer is told and frames what it can.
    /// Returns the free space offered.
    fn one_read(framer: &mut Framer, take: impl FnOnce(usize) -> Vec<u8>) -> usize {
        let target = framer.read_target();
        let offered = target.capacity() - target.len();
        let bytes = take(offered);
        target.extend_from_slice(&bytes);
        framer.note_read(bytes.len());
        while framer.next_fragment().unwrap().is_some() {}
        offered
    }

    #[test]
    fn a_busy_connection_reads_in_big_chunks_and_a_quiet_one_keeps_a_small_buffer() {
        let mut framer = Framer::new(u32::MAX);
        let lines = |n: usize| -> Vec<u8> {
            b"* 1 FETCH (FLAGS (\\Seen))\r\n"
                .iter()
                .copied()
                .cycle()
                .take(n)
                .collect()
        };
        let first = one_read(&mut framer, lines);
        assert!(
            (MIN_READ..READ_CHUNK).contains(&first),
            "{first} offered first"
        );
        // Each read takes all it is offered: the offer doubles up to the chunk.
        let mut offered = first;
        for _ in 0..6 {
            offered = one_read(&mut framer, lines);
        }
        assert!(
            offered >= READ_CHUNK,
            "{offered} offered to a bulk transfer"
        );
        // The line cut off by the last read ends, then only short answers.
        one_read(&mut framer, |_| b"\r\n".to_vec());
        for _ in 0..6 {
            one_read(&mut framer, |_| b"a OK\r\n".to_vec());
        }
        assert_eq!(framer.offer, MIN_READ);
        let target = framer.read_target();
        assert!(target.is_empty());
        assert!(
            target.capacity() <= 2 * MIN_READ,
            "{} bytes kept by a quiet connection",
            target.capacity()
        );
    }

    #[test]
    fn skip_message_after_a_refused_literal() {
        let mut framer = Framer::new(1000);
        let input = b"a APPEND x {50}\r\nb NOOP\r\n";
        framer.read_target().extend_from_slice(input);
        assert!(matches!(
            framer.next_fragment().unwrap(),
            Some(Fragment::Line {
                announcement: Some(_),
                ..
            })
        ));
        framer.skip_message();
        framer.next_fragment().unwrap();
        assert_eq!(framer.message(), b"b NOOP\r\n");
    }
}
