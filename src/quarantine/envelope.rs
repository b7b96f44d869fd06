//! The message giftlock stores in the quarantine folder: an RFC 3156
//! PGP/MIME message whose encrypted part is the whole original, byte for
//! byte. Its outer headers carry nothing a thief can use: the Subject and
//! Date of the masked copy, and the marker header [`MARKER`] with the
//! transaction id, the handles and where the original was.
//!
//! ```text
//! X-Giftlock-Quarantine: v=1; kind=message; tx=<id>; handles=GL7F3A GL02AB;
//!     mailbox=<base64url of the name>; uidvalidity=7; uid=42
//! ```
//!
//! The same format holds the key escrow (`kind=keys`): the fingerprint key,
//! encrypted, so that `giftlock recover` on a new machine gives the codes
//! the same handles the masked copies show.

use base64::Engine as _;

/// The marker header's name.
pub const MARKER: &str = "X-Giftlock-Quarantine";

/// What a quarantine-folder message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An encrypted original.
    Message,
    /// The encrypted key escrow.
    Keys,
}

/// The marker header's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub kind: Kind,
    /// The transaction id (hex), unique per quarantine.
    pub tx: String,
    pub handles: Vec<String>,
    /// Where the original was.
    pub mailbox: Vec<u8>,
    pub uidvalidity: u32,
    pub uid: u32,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl Marker {
    /// The header field's value (one line; folded by the caller if needed).
    pub fn value(&self) -> String {
        let kind = match self.kind {
            Kind::Message => "message",
            Kind::Keys => "keys",
        };
        format!(
            "v=1; kind={kind}; tx={}; handles={}; mailbox={}; uidvalidity={}; uid={}",
            self.tx,
            self.handles.join(" "),
            B64.encode(&self.mailbox),
            self.uidvalidity,
            self.uid
        )
    }

    /// Reads a marker value; `None` when it is not one giftlock wrote.
    pub fn parse(value: &[u8]) -> Option<Marker> {
        let text = std::str::from_utf8(value).ok()?;
        let mut fields = std::collections::HashMap::new();
        for pair in text.split(';') {
            let (k, v) = pair.split_once('=')?;
            fields.insert(k.trim(), v.trim());
        }
        if fields.get("v") != Some(&"1") {
            return None;
        }
        let kind = match *fields.get("kind")? {
            "message" => Kind::Message,
            "keys" => Kind::Keys,
            _ => return None,
        };
        let tx = fields.get("tx")?;
        if tx.is_empty() || !tx.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Marker {
            kind,
            tx: tx.to_string(),
            handles: fields
                .get("handles")?
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect(),
            mailbox: B64.decode(fields.get("mailbox")?).ok()?,
            uidvalidity: fields.get("uidvalidity")?.parse().ok()?,
            uid: fields.get("uid")?.parse().ok()?,
        })
    }
}

/// The quarantine message for `armored` (the OpenPGP message), with the
/// outer `subject` and `date` (raw header values of the masked copy, or
/// none).
pub fn build(
    marker: &Marker,
    subject: Option<&[u8]>,
    date: Option<&[u8]>,
    armored: &str,
) -> Vec<u8> {
    let boundary = format!("giftlock-{}", marker.tx);
    let mut out = Vec::with_capacity(armored.len() + 1024);
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    if let Some(date) = date {
        out.extend_from_slice(b"Date:");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Subject:");
    out.extend_from_slice(subject.unwrap_or(b" (no subject)"));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(format!("{MARKER}: {}\r\n", marker.value()).as_bytes());
    out.extend_from_slice(
        format!(
            "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n \
             boundary=\"{boundary}\"\r\n\r\n\
             This is an OpenPGP/MIME encrypted message (RFC 3156) kept by giftlock.\r\n\
             Decrypt it with your giftlock key: gpg --decrypt\r\n\r\n\
             --{boundary}\r\n\
             Content-Type: application/pgp-encrypted\r\n\
             Content-Description: PGP/MIME version identification\r\n\r\n\
             Version: 1\r\n\r\n\
             --{boundary}\r\n\
             Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\
             Content-Description: OpenPGP encrypted message\r\n\
             Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n"
        )
        .as_bytes(),
    );
    for line in armored.lines() {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The marker and the armoured OpenPGP message of a quarantine message;
/// `None` for any other message.
pub fn parse(message: &[u8]) -> Option<(Marker, &[u8])> {
    let marker = Marker::parse(header_value(message, MARKER)?.trim_ascii())?;
    const BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
    const END: &[u8] = b"-----END PGP MESSAGE-----";
    let start = memchr::memmem::find(message, BEGIN)?;
    let end = start + memchr::memmem::find(&message[start..], END)? + END.len();
    Some((marker, &message[start..end]))
}

/// The raw value of header field `name` in `message`'s header block (after
/// the colon, folds kept, without the final line break).
pub fn header_value<'m>(message: &'m [u8], name: &str) -> Option<&'m [u8]> {
    let header = crate::mask::header_block(message).unwrap_or(message);
    let mut at = 0;
    while at < header.len() {
        let line_end = memchr::memchr(b'\n', &header[at..]).map_or(header.len(), |i| at + i + 1);
        let line = &header[at..line_end];
        let named = line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && line[name.len()] == b':';
        if named {
            // The value runs on over continuation lines.
            let mut end = line_end;
            while end < header.len() && matches!(header[end], b' ' | b'\t') {
                end = memchr::memchr(b'\n', &header[end..]).map_or(header.len(), |i| end + i + 1);
            }
            let value = &header[at + name.len() + 1..end];
            let value = value.strip_suffix(b"\n").unwrap_or(value);
            return Some(value.strip_suffix(b"\r").unwrap_or(value));
        }
        at = line_end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> Marker {
        Marker {
            kind: Kind::Message,
            tx: "0123abcd".into(),
            handles: vec!["GL7F3A".into(), "GL02AB".into()],
            mailbox: "Boîte/INBOX".as_bytes().to_vec(),
            uidvalidity: 7,
            uid: 42,
        }
    }

    #[test]
    fn markers_round_trip_and_foreign_values_are_refused() {
        let m = marker();
        assert_eq!(Marker::parse(m.value().as_bytes()), Some(m));
        assert_eq!(Marker::parse(b"v=2; kind=message"), None);
        assert_eq!(Marker::parse(b"hello"), None);
    }

    #[test]
    fn the_message_carries_the_masked_subject_the_marker_and_the_armour() {
        let armored = "-----BEGIN PGP MESSAGE-----\n\nwcFMA\n-----END PGP MESSAGE-----\n";
        let built = build(
            &marker(),
            Some(b" Your code GL7F-3A****\r\n folded"),
            Some(b" Mon, 1 Jun 2026 10:00:00 +0900"),
            armored,
        );
        let (m, body) = parse(&built).unwrap();
        assert_eq!(m, marker());
        assert_eq!(
            body,
            b"-----BEGIN PGP MESSAGE-----\r\n\r\nwcFMA\r\n-----END PGP MESSAGE-----"
        );
        assert_eq!(
            header_value(&built, "subject").unwrap(),
            b" Your code GL7F-3A****\r\n folded"
        );
        let parsed = mail_parser::MessageParser::new().parse(&built).unwrap();
        assert_eq!(parsed.parts.len(), 3, "multipart/encrypted with two parts");
        assert_eq!(parse(b"Subject: hi\r\n\r\nbody"), None);
    }
}
