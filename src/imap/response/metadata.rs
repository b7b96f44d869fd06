//! The quick answer for FETCH responses that carry message metadata only.
//!
//! Most FETCH responses a client gets are flag syncs and STORE echoes
//! (`* 5 FETCH (UID 9 FLAGS (\Seen))`). Decoding each with imap-codec was
//! most of the relay's work in a persistent imaptest run; [`is_metadata_only`]
//! walks them in one pass instead. It accepts a strict subset of what the
//! decoder accepts and reports as content-free: one CRLF-ended line, item
//! names it knows, each value of the exact shape RFC 3501 and RFC 7162 give
//! it. Whatever it does not accept goes to the full decode, as before, and
//! fails closed there.

use crate::imap::syntax::strip_prefix_ci;

/// Whether `message` (a whole server message without literals) is a
/// `* n FETCH (...)` response of `UID`, `FLAGS`, `RFC822.SIZE`,
/// `INTERNALDATE` and `MODSEQ` items only, every value well formed.
pub(super) fn is_metadata_only(message: &[u8]) -> bool {
    let Some(line) = message.strip_suffix(b"\r\n") else {
        return false;
    };
    let Some(rest) = line.strip_prefix(b"* ") else {
        return false;
    };
    let Some((seq, rest)) = split_at_byte(rest, b' ') else {
        return false;
    };
    if nz_number(seq).is_none() {
        return false;
    }
    let Some(list) = strip_prefix_ci(rest, b"FETCH (").and_then(|r| r.strip_suffix(b")")) else {
        return false;
    };
    let mut rest = list;
    loop {
        let Some((name, after)) = split_at_byte(rest, b' ') else {
            return false;
        };
        let Some(after) = item_value_end(name, after) else {
            return false;
        };
        match after.split_first() {
            None => return true,
            Some((b' ', next)) => rest = next,
            Some(_) => return false,
        }
    }
}

/// What follows the value of item `name` at the start of `value`; `None`
/// when the item is not one this module knows or its value is malformed.
fn item_value_end<'a>(name: &[u8], value: &'a [u8]) -> Option<&'a [u8]> {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    if is(b"UID") {
        let (digits, rest) = leading_digits(value);
        nz_number(digits).map(|_| rest)
    } else if is(b"RFC822.SIZE") {
        let (digits, rest) = leading_digits(value);
        number(digits).map(|_| rest)
    } else if is(b"MODSEQ") {
        let (digits, rest) = leading_digits(value.strip_prefix(b"(")?);
        let rest = rest.strip_prefix(b")")?;
        (number64(digits)? > 0).then_some(rest)
    } else if is(b"FLAGS") {
        flag_list_end(value)
    } else if is(b"INTERNALDATE") {
        let (date, rest) = value.strip_prefix(b"\"")?.split_at_checked(26)?;
        let rest = rest.strip_prefix(b"\"")?;
        is_date_time(date).then_some(rest)
    } else {
        None
    }
}

/// `(` [flag *(SP flag)] `)`, a flag being an atom with an optional `\`.
fn flag_list_end(value: &[u8]) -> Option<&[u8]> {
    let mut rest = value.strip_prefix(b"(")?;
    if let Some(after) = rest.strip_prefix(b")") {
        return Some(after);
    }
    loop {
        let flag = rest.strip_prefix(b"\\").unwrap_or(rest);
        let atom = flag.iter().take_while(|&&b| is_atom_char(b)).count();
        if atom == 0 {
            return None;
        }
        match flag.get(atom..)?.split_first()? {
            (b')', after) => return Some(after),
            (b' ', next) => rest = next,
            _ => return None,
        }
    }
}

/// RFC 3501's ATOM-CHAR, without `]` (allowed there, rare, and left to the
/// full decode).
fn is_atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz`, the day possibly space-padded, every
/// field in range (a real calendar date, a zone within 24 hours).
fn is_date_time(d: &[u8]) -> bool {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let digits = d.get(r)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, &b| n * 10 + u32::from(b - b'0')))
    };
    let day = match d[0] {
        b' ' => num(1..2),
        _ => num(0..2),
    };
    let shape = d[2] == b'-'
        && d[6] == b'-'
        && d[11] == b' '
        && d[14] == b':'
        && d[17] == b':'
        && d[20] == b' '
        && matches!(d[21], b'+' | b'-');
    let Some(month) = MONTHS.iter().position(|m| d[3..6] == **m) else {
        return false;
    };
    let (Some(day), Some(year), Some(h), Some(m), Some(s), Some(zh), Some(zm)) = (
        day,
        num(7..11),
        num(12..14),
        num(15..17),
        num(18..20),
        num(22..24),
        num(24..26),
    ) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    shape
        && (1..=month_days[month]).contains(&day)
        && h < 24
        && m < 60
        && s < 60
        && zh < 24
        && zm < 60
}

fn split_at_byte(bytes: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|&b| b == at)?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

fn leading_digits(bytes: &[u8]) -> (&[u8], &[u8]) {
    bytes.split_at(bytes.iter().take_while(|b| b.is_ascii_digit()).count())
}

/// A 32-bit number (the decoder's `number`).
fn number(digits: &[u8]) -> Option<u32> {
    u32::try_from(number64(digits)?).ok()
}

fn nz_number(digits: &[u8]) -> Option<u32> {
    number(digits).filter(|&n| n > 0)
}

/// Digits without a leading zero (but `0` itself), at most `i64::MAX`
/// (RFC 7162's mod-sequence-value).
fn number64(digits: &[u8]) -> Option<u64> {
    let well_formed = !digits.is_empty()
        && digits.len() <= 19
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1);
    if !well_formed {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (n <= i64::MAX as u64).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::super::{decode_fetch, Inspection};
    use super::is_metadata_only;
    use proptest::prelude::*;

    /// Both answers for one literal-free message: the quick one may say
    /// "metadata only" only where the decoder finds no content either.
    fn agrees_with_decoder(message: &[u8]) -> Result<bool, TestCaseError> {
        let quick = is_metadata_only(message);
        if quick {
            prop_assert_eq!(
                decode_fetch(message, &[]),
                Inspection::NoContent,
                "{}",
                String::from_utf8_lossy(message)
            );
        }
        Ok(quick)
    }

    #[test]
    fn flag_syncs_and_store_echoes_are_metadata_only() {
        for m in [
            &b"* 1 FETCH (UID 5 FLAGS (\\Seen \\Answered $Forwarded))\r\n"[..],
            b"* 3 FETCH (FLAGS ())\r\n",
            b"* 4294967295 FETCH (FLAGS (\\Recent) UID 4294967295 MODSEQ (9223372036854775807))\r\n",
            b"* 2 fetch (uid 9 rfc822.size 0 internaldate \" 5-Dec-2026 10:11:12 +0000\")\r\n",
            b"* 7 FETCH (INTERNALDATE \"29-Feb-2024 23:59:59 -1130\" RFC822.SIZE 1234)\r\n",
        ] {
            assert!(agrees_with_decoder(m).unwrap(), "{}", String::from_utf8_lossy(m));
        }
    }

    #[test]
    fn anything_else_goes_to_the_decoder() {
        for m in [
            // Content and structure items, alone or beside metadata.
            &b"* 1 FETCH (UID 5 BODY[] \"hi\")\r\n"[..],
            b"* 1 FETCH (FLAGS (\\Seen) ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))\r\n",
            b"* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 2 1))\r\n",
            // Items the decoder does not know (and the caller scans whole).
            b"* 1 FETCH (UID 5 X-GM-LABELS (\\Inbox))\r\n",
            b"* 1 FETCH (UID 5 X-GUID abc)\r\n",
            // Malformed values and framing.
            b"* 1 FETCH (UID 0)\r\n",
            b"* 1 FETCH (UID 05)\r\n",
            b"* 0 FETCH (UID 5)\r\n",
            b"* 1 FETCH (UID 4294967296)\r\n",
            b"* 1 FETCH (MODSEQ (0))\r\n",
            b"* 1 FETCH (MODSEQ 5)\r\n",
            b"* 1 FETCH (FLAGS (\\*))\r\n",
            b"* 1 FETCH (FLAGS (a]b))\r\n",
            b"* 1 FETCH (FLAGS (\\Seen  \\Draft))\r\n",
            b"* 1 FETCH (FLAGS \\Seen)\r\n",
            b"* 1 FETCH (INTERNALDATE \"30-Feb-2026 10:11:12 +0000\")\r\n",
            b"* 1 FETCH (INTERNALDATE \"05-Dec-2026 24:11:12 +0000\")\r\n",
            b"* 1 FETCH (INTERNALDATE \"05-dec-2026 10:11:12 +0000\")\r\n",
            b"* 1 FETCH ()\r\n",
            b"* 1 FETCH (UID 5)\n",
            b"* 1 FETCH (UID 5) \r\n",
            b"* 1 FETCH (UID 5 )\r\n",
            b"* 1 FETCH (UID 5)\r\n* 2 FETCH (BODY[] \"x\")\r\n",
        ] {
            assert!(
                !agrees_with_decoder(m).unwrap(),
                "{}",
                String::from_utf8_lossy(m)
            );
        }
    }

    fn flag() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "\\Seen",
                "\\Answered",
                "\\Flagged",
                "\\Deleted",
                "\\Draft",
                "\\Recent",
                "\\Junk"
            ])
            .prop_map(String::from),
            "[A-Za-z$][A-Za-z0-9$_.-]{0,10}",
        ]
    }

    fn date_time() -> impl Strategy<Value = String> {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        (
            1u32..=28,
            0usize..12,
            1970u32..=2100,
            (0u32..24, 0u32..60, 0u32..60),
            (prop::bool::ANY, 0u32..14, 0u32..60),
        )
            .prop_map(|(d, mo, y, (h, mi, s), (east, zh, zm))| {
                let sign = if east { '+' } else { '-' };
                format!(
                    "{d:>2}-{}-{y} {h:02}:{mi:02}:{s:02} {sign}{zh:02}{zm:02}",
                    MONTHS[mo]
                )
            })
    }

    fn item() -> impl Strategy<Value = String> {
        prop_oneof![
            (1u32..).prop_map(|n| format!("UID {n}")),
            any::<u32>().prop_map(|n| format!("RFC822.SIZE {n}")),
            (1u64..=i64::MAX as u64).prop_map(|n| format!("MODSEQ ({n})")),
            prop::collection::vec(flag(), 0..4).prop_map(|f| format!("FLAGS ({})", f.join(" "))),
            date_time().prop_map(|d| format!("INTERNALDATE \"{d}\"")),
        ]
    }

    /// A well-formed metadata response, its names in random case.
    fn response() -> impl Strategy<Value = Vec<u8>> {
        (
            1u32..,
            prop::collection::vec((item(), prop::bool::ANY), 1..6),
        )
            .prop_map(|(seq, items)| {
                let items: Vec<String> = items
                    .into_iter()
                    .map(|(item, lower)| {
                        let (name, value) = item.split_once(' ').unwrap();
                        let name = if lower {
                            name.to_ascii_lowercase()
                        } else {
                            name.into()
                        };
                        format!("{name} {value}")
                    })
                    .collect();
                format!("* {seq} FETCH ({})\r\n", items.join(" ")).into_bytes()
            })
    }

    proptest! {
        #[test]
        fn well_formed_metadata_is_recognised_and_content_free(m in response()) {
            prop_assert!(agrees_with_decoder(&m)?, "{}", String::from_utf8_lossy(&m));
        }

        /// Edited responses: whatever the quick check still takes, the
        /// decoder also finds free of content.
        #[test]
        fn edited_responses_are_never_taken_for_metadata_wrongly(
            m in response(),
            edits in prop::collection::vec(
                (any::<prop::sample::Index>(), 0u8..3, prop::sample::select(
                    b" ()[]{}\"\\*%0159AZaz.-:+\r\n\x00\x7f\xff".to_vec(),
                )),
                1..4,
            ),
        ) {
            let mut m = m;
            for (at, kind, byte) in edits {
                let i = at.index(m.len());
                match kind {
                    0 => m[i] = byte,
                    1 => m.insert(i, byte),
                    _ => { m.remove(i); }
                }
            }
            agrees_with_decoder(&m)?;
        }
    }
}
