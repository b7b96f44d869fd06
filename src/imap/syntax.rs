//! Small pieces of IMAP syntax read or written on raw lines, each in one
//! place: the tagged completion of a command, a number after a marker,
//! astrings (quoted, atom or literal), and case-insensitive prefix and
//! search.
//!
//! Whole commands and responses are decoded with imap-codec; these are for
//! the few spots that look at a line without decoding it (a tag to match, a
//! response code in a server line) or build one of giftlock's own commands.

/// The status of a tagged completion (RFC 3501 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    Ok,
    No,
    Bad,
}

/// `bytes` without `prefix`, if it starts with it (ASCII case-insensitive,
/// as IMAP's keywords are).
pub fn strip_prefix_ci<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = bytes.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

/// Where `needle` first occurs in `haystack` (ASCII case-insensitive).
pub fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// `message` without its line ending (CRLF or LF).
pub fn split_line_ending(message: &[u8]) -> (&[u8], &[u8]) {
    let end = message
        .strip_suffix(b"\r\n")
        .or_else(|| message.strip_suffix(b"\n"))
        .map_or(message.len(), <[u8]>::len);
    message.split_at(end)
}

/// Whether `message` is the tagged response to the command tagged `tag`.
pub fn is_tagged(message: &[u8], tag: &[u8]) -> bool {
    !tag.is_empty()
        && message
            .strip_prefix(tag)
            .is_some_and(|rest| rest.starts_with(b" "))
}

/// The completion `message` gives the command tagged `tag`, if it is that
/// command's tagged response. A status other than OK, NO or BAD is `Bad`.
pub fn completion(message: &[u8], tag: &[u8]) -> Option<Completion> {
    if !is_tagged(message, tag) {
        return None;
    }
    let status = &message[tag.len() + 1..];
    let word = |w: &[u8]| {
        status
            .get(..w.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(w))
    };
    Some(if word(b"OK") {
        Completion::Ok
    } else if word(b"NO") {
        Completion::No
    } else {
        Completion::Bad
    })
}

/// The decimal number right after the first `marker` in `message` (ASCII
/// case-insensitive), such as `[UIDVALIDITY ` or ` UID `.
pub fn number_after(message: &[u8], marker: &[u8]) -> Option<u32> {
    if marker.is_empty() {
        return None;
    }
    let at = message
        .windows(marker.len())
        .position(|w| w.eq_ignore_ascii_case(marker))?
        + marker.len();
    let digits = &message[at..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// Where an APPENDed message went (UIDPLUS, RFC 4315).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendUid {
    pub uidvalidity: u32,
    pub uid: u32,
}

/// The `[APPENDUID v u]` code of a tagged `OK` line (`tag OK [APPENDUID v
/// u] text`): only as the code right after the status, where RFC 4315 puts
/// it (never a look-alike in the text), and only for one UID (the UID set
/// of a MULTIAPPEND is `None`).
pub fn append_uid(line: &[u8]) -> Option<AppendUid> {
    const CODE: &[u8] = b"OK [APPENDUID ";
    let space = line.iter().position(|&b| b == b' ')?;
    if matches!(&line[..space], b"*" | b"+") {
        return None;
    }
    let status = &line[space + 1..];
    if !status.get(..CODE.len())?.eq_ignore_ascii_case(CODE) {
        return None;
    }
    let (uidvalidity, rest) = leading_number(&status[CODE.len()..])?;
    let (uid, rest) = leading_number(rest.strip_prefix(b" ")?)?;
    rest.starts_with(b"]")
        .then_some(AppendUid { uidvalidity, uid })
}

/// Whether every CR in `bytes` is followed by LF and every LF preceded by
/// CR, and `bytes` end with CRLF: the line ends RFC 5322 requires and a
/// server stores and serves without change.
pub fn lines_end_in_crlf(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\r\n")
        && memchr::memchr_iter(b'\n', bytes).all(|lf| lf > 0 && bytes[lf - 1] == b'\r')
        && memchr::memchr_iter(b'\r', bytes).all(|cr| bytes.get(cr + 1) == Some(&b'\n'))
}

/// The non-zero decimal number `bytes` start with, and what follows it.
fn leading_number(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let end = bytes
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(bytes.len());
    let n: u32 = std::str::from_utf8(&bytes[..end]).ok()?.parse().ok()?;
    (n > 0).then_some((n, &bytes[end..]))
}

/// `text` as an IMAP quoted string.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `bytes` as an astring for a command giftlock sends: quoted when it can
/// be, else a synchronising literal (`{n}\r\n` and the bytes).
pub fn encode_astring(bytes: &[u8]) -> Vec<u8> {
    let quotable = bytes
        .iter()
        .all(|&b| b.is_ascii() && b != 0 && b != b'\r' && b != b'\n');
    match (quotable, std::str::from_utf8(bytes)) {
        (true, Ok(text)) => quoted(text).into_bytes(),
        _ => [format!("{{{}}}\r\n", bytes.len()).as_bytes(), bytes].concat(),
    }
}

/// A quoted string (unescaped) or an atom at the start of `input`, and what
/// follows it. Literals are not read here (`None`).
pub fn parse_astring(input: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if let Some(quoted) = input.strip_prefix(b"\"") {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(&b) = quoted.get(i) {
            match b {
                b'\\' => {
                    out.push(*quoted.get(i + 1)?);
                    i += 2;
                }
                b'"' => return Some((out, &quoted[i + 1..])),
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        return None;
    }
    let len = input
        .iter()
        .take_while(|&&b| !matches!(b, b' ' | b'(' | b')' | b'{' | b'\r' | b'\n'))
        .count();
    (len > 0).then(|| (input[..len].to_vec(), &input[len..]))
}

/// `seqs` as an IMAP sequence set, runs written as ranges (`1:40,52`), so a
/// long search result stays a short command.
pub fn sequence_set(seqs: &[u32]) -> String {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while end
            .checked_add(1)
            .is_some_and(|next| sorted.get(i + 1) == Some(&next))
        {
            end += 1;
            i += 1;
        }
        parts.push(match start == end {
            true => start.to_string(),
            false => format!("{start}:{end}"),
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_sets_use_ranges() {
        assert_eq!(sequence_set(&[5, 1, 2, 3, 9, 10, 3]), "1:3,5,9:10");
        assert_eq!(sequence_set(&[7]), "7");
        assert_eq!(
            sequence_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn completions_match_the_tag_only() {
        assert_eq!(completion(b"a1 OK done\r\n", b"a1"), Some(Completion::Ok));
        assert_eq!(completion(b"a1 no [X] y\r\n", b"a1"), Some(Completion::No));
        assert_eq!(completion(b"a1 BAD y\r\n", b"a1"), Some(Completion::Bad));
        assert_eq!(completion(b"a10 OK done\r\n", b"a1"), None);
        assert_eq!(completion(b"* OK a1\r\n", b"a1"), None);
        assert_eq!(completion(b" OK\r\n", b""), None);
        assert!(is_tagged(b"t PREAUTH\r\n", b"t"));
    }

    #[test]
    fn numbers_are_read_after_markers() {
        assert_eq!(
            number_after(b"* OK [UIDVALIDITY 1234] ok\r\n", b"[UIDVALIDITY "),
            Some(1234)
        );
        assert_eq!(
            number_after(b"* 4 FETCH (FLAGS () uid 9 RFC822.SIZE 5120)", b" UID "),
            Some(9)
        );
        assert_eq!(number_after(b"* 4 FETCH (UID x)", b"UID "), None);
        assert_eq!(number_after(b"UID 99999999999", b"UID "), None);
        assert_eq!(number_after(b"anything", b""), None);
    }

    #[test]
    fn an_append_uid_is_read_only_as_the_code_after_ok() {
        let read = |line: &[u8]| append_uid(line);
        assert_eq!(
            read(b"a OK [APPENDUID 38505 3955] APPEND completed\r\n"),
            Some(AppendUid {
                uidvalidity: 38505,
                uid: 3955
            })
        );
        assert_eq!(
            read(b"a ok [appenduid 7 42]\r\n"),
            Some(AppendUid {
                uidvalidity: 7,
                uid: 42
            })
        );
        for line in [
            &b"a OK done\r\n"[..],
            b"a OK [APPENDUID 38505 3955:3957] done\r\n",
            b"a OK [APPENDUID 38505 3955,3960] done\r\n",
            b"a OK done [APPENDUID 1 2]\r\n",
            b"a NO [APPENDUID 1 2] no\r\n",
            b"* OK [APPENDUID 1 2]\r\n",
            b"+ OK [APPENDUID 1 2]\r\n",
            b"a OK [APPENDUID 0 2] zero",
            b"a OK [APPENDUID 1 0] zero",
            b"a OK [APPENDUID 1 99999999999] too big",
            b"a OK [APPENDUID 1 2",
            b"a",
        ] {
            assert_eq!(read(line), None, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn only_crlf_line_ends_pass() {
        assert!(lines_end_in_crlf(b"a\r\nb\r\n\r\n"));
        assert!(lines_end_in_crlf(b"\r\n"));
        for bytes in [
            &b""[..],
            b"a",
            b"a\r\nb",
            b"a\nb\r\n",
            b"a\rb\r\n",
            b"a\r\r\n",
            b"a\r\n\n",
            b"a\n\r",
            b"a\r\n\r",
        ] {
            assert!(!lines_end_in_crlf(bytes), "{bytes:?}");
        }
    }

    #[test]
    fn astrings_round_trip() {
        assert_eq!(encode_astring(b"INBOX"), b"\"INBOX\"");
        assert_eq!(encode_astring(b"a \"b\\c"), b"\"a \\\"b\\\\c\"");
        assert_eq!(
            encode_astring("Geschäft".as_bytes()),
            [b"{9}\r\n".as_slice(), "Geschäft".as_bytes()].concat()
        );
        for name in [&b"INBOX"[..], b"a \"b\\c", b"x"] {
            let encoded = encode_astring(name);
            let (parsed, rest) = parse_astring(&encoded).unwrap();
            assert_eq!((parsed.as_slice(), rest), (name, &b""[..]));
        }
        assert_eq!(
            parse_astring(b"Sent (x)"),
            Some((b"Sent".to_vec(), &b" (x)"[..]))
        );
        assert_eq!(parse_astring(b"\"open"), None);
        assert_eq!(parse_astring(b"{3}\r\nabc"), None);
        assert_eq!(split_line_ending(b"a\r\n"), (&b"a"[..], &b"\r\n"[..]));
    }
}
