//! FETCH on the virtual mailbox: the real message's FETCH responses (from
//! giftlock's fetch connection, unmasked) with the sequence number and UID
//! rewritten to the virtual ones and FLAGS replaced by the session's; or,
//! when the real message is gone, the items the vault's original can give.
//!
//! Items are copied byte for byte (ENVELOPE, BODYSTRUCTURE, sections,
//! BINARY, literals and all); only the response's frame, `UID` and `FLAGS`
//! are giftlock's.

use crate::imap::response::items;

/// The value of the `UID` item of a FETCH response.
pub fn uid_of(message: &[u8]) -> Option<u32> {
    let (_, items) = items(message)?;
    items.iter().find_map(|(name, value)| {
        message[name.clone()]
            .eq_ignore_ascii_case(b"UID")
            .then(|| {
                std::str::from_utf8(&message[value.clone()])
                    .ok()?
                    .parse()
                    .ok()
            })
            .flatten()
    })
}

/// `message` as the virtual mailbox's message `n`: number and UID `n`,
/// FLAGS `flags` (when the server sent FLAGS), every other item as it is.
pub fn rewrite(message: &[u8], n: u32, flags: &str) -> Option<Vec<u8>> {
    let (_, items) = items(message)?;
    let mut out = format!("* {n} FETCH (").into_bytes();
    for (i, (name, value)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let name_bytes = &message[name.clone()];
        out.extend_from_slice(name_bytes);
        out.push(b' ');
        if name_bytes.eq_ignore_ascii_case(b"UID") {
            out.extend_from_slice(n.to_string().as_bytes());
        } else if name_bytes.eq_ignore_ascii_case(b"FLAGS") {
            out.extend_from_slice(format!("({flags})").as_bytes());
        } else {
            out.extend_from_slice(&message[value.clone()]);
        }
    }
    out.extend_from_slice(b")\r\n");
    Some(out)
}

/// What a FETCH asks for that the vault's original can give.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FromOriginal {
    pub flags: bool,
    pub size: bool,
    /// `BODY[]` / `BODY.PEEK[]` (answered as `BODY[]`).
    pub body: bool,
    pub rfc822: bool,
}

impl FromOriginal {
    /// Reads the item list of a FETCH command (`(A B)`, one item, or a
    /// macro).
    pub fn asked(items: &[u8]) -> FromOriginal {
        let upper = items.to_ascii_uppercase();
        let inner = upper
            .strip_prefix(b"(")
            .map_or(&upper[..], |s| s.strip_suffix(b")").unwrap_or(s));
        let mut asked = FromOriginal::default();
        for word in inner.split(|&b| b == b' ') {
            match word {
                b"FLAGS" => asked.flags = true,
                b"RFC822.SIZE" => asked.size = true,
                b"BODY[]" | b"BODY.PEEK[]" => asked.body = true,
                b"RFC822" => asked.rfc822 = true,
                b"ALL" | b"FAST" | b"FULL" => {
                    asked.flags = true;
                    asked.size = true;
                }
                _ => {}
            }
        }
        asked
    }

    /// The FETCH response for message `n` from its original.
    pub fn response(&self, original: &[u8], n: u32, flags: &str) -> Vec<u8> {
        let mut out = format!("* {n} FETCH (UID {n}").into_bytes();
        if self.flags {
            out.extend_from_slice(format!(" FLAGS ({flags})").as_bytes());
        }
        if self.size {
            out.extend_from_slice(format!(" RFC822.SIZE {}", original.len()).as_bytes());
        }
        for (wanted, name) in [(self.body, "BODY[]"), (self.rfc822, "RFC822")] {
            if wanted {
                out.extend_from_slice(format!(" {name} {{{}}}\r\n", original.len()).as_bytes());
                out.extend_from_slice(original);
            }
        }
        out.extend_from_slice(b")\r\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &[u8] = b"* 17 FETCH (UID 4242 FLAGS (\\Seen $Junk) BODY[HEADER.FIELDS (SUBJECT FROM)] {10}\r\nSubject:\r\n ENVELOPE (\"d\" {3}\r\n(x) NIL ((\"a \\\" b\" NIL \"x\" \"y\")) NIL) BINARY[1]<0> ~{2}\r\n\0) RFC822.SIZE 99)\r\n";

    #[test]
    fn items_are_walked_with_literals_quotes_and_sections() {
        let (n, items) = items(RESPONSE).unwrap();
        assert_eq!(n, 17);
        let names: Vec<&[u8]> = items.iter().map(|(n, _)| &RESPONSE[n.clone()]).collect();
        assert_eq!(
            names,
            [
                &b"UID"[..],
                b"FLAGS",
                b"BODY[HEADER.FIELDS (SUBJECT FROM)]",
                b"ENVELOPE",
                b"BINARY[1]<0>",
                b"RFC822.SIZE"
            ]
        );
        assert_eq!(&RESPONSE[items[2].1.clone()], b"{10}\r\nSubject:\r\n");
        assert_eq!(&RESPONSE[items[4].1.clone()], b"~{2}\r\n\0)");
        assert_eq!(uid_of(RESPONSE), Some(4242));
    }

    #[test]
    fn responses_get_the_virtual_number_uid_and_flags() {
        let out = rewrite(RESPONSE, 3, "\\Flagged").unwrap();
        let rest = RESPONSE
            .windows(12)
            .position(|w| w == b" BODY[HEADER")
            .unwrap();
        let want = [
            &b"* 3 FETCH (UID 3 FLAGS (\\Flagged)"[..],
            &RESPONSE[rest..],
        ]
        .concat();
        assert_eq!(out, want);
        assert_eq!(rewrite(b"* 3 EXISTS\r\n", 1, ""), None);
        assert_eq!(
            rewrite(b"* 3 FETCH (BODY[] {10}\r\nshort)\r\n", 1, ""),
            None
        );
    }

    #[test]
    fn the_original_answers_whole_message_items() {
        let asked = FromOriginal::asked(b"(UID RFC822.SIZE BODY.PEEK[] FLAGS)");
        assert_eq!(
            asked,
            FromOriginal {
                flags: true,
                size: true,
                body: true,
                rfc822: false
            }
        );
        assert_eq!(
            asked.response(b"abc", 2, "\\Seen"),
            b"* 2 FETCH (UID 2 FLAGS (\\Seen) RFC822.SIZE 3 BODY[] {3}\r\nabc)\r\n"
        );
        assert!(FromOriginal::asked(b"rfc822").rfc822);
    }
}
