//! The capability allow-list.
//!
//! giftlock only passes on capabilities it relays correctly and that keep
//! every message byte on the content path. Anything else is stripped from the
//! greeting, from `* CAPABILITY` and from `[CAPABILITY ...]` response codes:
//! COMPRESS (the content path would see compressed bytes), the upstream's
//! STARTTLS / AUTH= / LOGINDISABLED (the client authenticates to giftlock,
//! not upstream), URLAUTH (fetches content outside the session), PREVIEW /
//! SNIPPET (server-generated previews would leak codes), and everything
//! giftlock does not know.
//!
//! The filter rewrites only the capability list inside the raw line; every
//! other byte of the response is kept as the server sent it.

use super::syntax::{find_ci, split_line_ending, strip_prefix_ci};

/// Capabilities passed through after login (compared case-insensitively):
/// only those whose commands giftlock reads whole ([`super::command`]) and
/// whose answers it serves through the masked view. `I18NLEVEL=` and
/// `APPENDLIMIT=` are matched by prefix in [`is_allowed`]. Left out, each
/// for a reason: ESEARCH, ESORT, CONTEXT=, SEARCHRES and IMAP4rev2 (result
/// forms that bypass the search filter), THREAD= (threads group messages by
/// their unmasked subjects and references), SORT=DISPLAY (display names are
/// text), MULTIAPPEND, CATENATE and URLAUTH (content by reference or in
/// forms the relay does not read), ACL, CREATE-SPECIAL-USE, LIST-MYRIGHTS,
/// SAVEDATE, OBJECTID, MAILBOX-REFERRALS (commands or items imap-codec does
/// not decode).
const ALLOWED: &[&str] = &[
    "IMAP4REV1",
    "LITERAL+",
    "LITERAL-",
    "ID",
    "IDLE",
    "NAMESPACE",
    "UIDPLUS",
    "UNSELECT",
    "CHILDREN",
    "MOVE",
    "SPECIAL-USE",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "ENABLE",
    "CONDSTORE",
    "QRESYNC",
    "WITHIN",
    "SORT",
    "BINARY",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "QUOTA=RES-MESSAGE",
    "STATUS=SIZE",
    "LOGIN-REFERRALS",
    "UTF8=ACCEPT",
];

const ALLOWED_PREFIXES: &[&str] = &["I18NLEVEL=", "APPENDLIMIT="];

/// Whether a capability passes the allow-list (after login).
pub fn is_allowed(capability: &[u8]) -> bool {
    let Ok(cap) = std::str::from_utf8(capability) else {
        return false;
    };
    ALLOWED.iter().any(|a| a.eq_ignore_ascii_case(cap))
        || ALLOWED_PREFIXES.iter().any(|p| {
            cap.len() > p.len()
                && cap.is_char_boundary(p.len())
                && cap[..p.len()].eq_ignore_ascii_case(p)
        })
}

/// Rewrites the capability lists in one response line, keeping only allowed
/// capabilities. Returns `None` when the line carries no capability list (the
/// caller then forwards it untouched).
///
/// Handles `* CAPABILITY a b c\r\n` and `[CAPABILITY a b c]` inside any
/// status response (greeting, tagged OK, untagged OK).
pub fn filter_line(line: &[u8]) -> Option<Vec<u8>> {
    if let Some(rest) = strip_word_ci(line, b"* CAPABILITY") {
        let (list, ending) = split_line_ending(rest);
        let mut out = Vec::with_capacity(line.len());
        out.extend_from_slice(&line[..line.len() - rest.len()]);
        push_allowed(&mut out, list);
        out.extend_from_slice(ending);
        return Some(out);
    }
    let start = find_ci(line, b"[CAPABILITY")?;
    let list_start = start + b"[CAPABILITY".len();
    let list_len = line[list_start..].iter().position(|&b| b == b']')?;
    let mut out = Vec::with_capacity(line.len());
    out.extend_from_slice(&line[..list_start]);
    push_allowed(&mut out, &line[list_start..list_start + list_len]);
    out.extend_from_slice(&line[list_start + list_len..]);
    Some(out)
}

/// Appends ` CAP` for every allowed capability in the space-separated `list`.
fn push_allowed(out: &mut Vec<u8>, list: &[u8]) {
    for cap in list.split(|&b| b == b' ').filter(|c| !c.is_empty()) {
        if is_allowed(cap) {
            out.push(b' ');
            out.extend_from_slice(cap);
        }
    }
}

/// `line` without `prefix` (ASCII case-insensitive), if it starts with it and
/// the prefix ends at a word boundary.
fn strip_word_ci<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let rest = strip_prefix_ci(line, prefix)?;
    matches!(rest.first(), None | Some(b' ' | b'\r' | b'\n')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(line: &str) -> String {
        String::from_utf8(filter_line(line.as_bytes()).expect("capability line")).unwrap()
    }

    #[test]
    fn strips_from_untagged_capability() {
        assert_eq!(
            filtered("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE COMPRESS=DEFLATE STARTTLS AUTH=PLAIN PREVIEW SNIPPET=FUZZY URLAUTH X-GM-EXT-1 THREAD=REFERENCES LITERAL+\r\n"),
            "* CAPABILITY IMAP4rev1 LOGIN-REFERRALS ID ENABLE IDLE LITERAL+\r\n"
        );
    }

    #[test]
    fn strips_from_response_codes_and_keeps_the_rest_of_the_line() {
        assert_eq!(
            filtered(
                "* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN LOGINDISABLED] Dovecot ready.\r\n"
            ),
            "* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n"
        );
        assert_eq!(
            filtered("a1 OK [capability IMAP4rev1 compress=deflate Move] Logged in\r\n"),
            "a1 OK [capability IMAP4rev1 Move] Logged in\r\n"
        );
    }

    #[test]
    fn lines_without_capabilities_are_left_alone() {
        assert!(filter_line(b"* 1 FETCH (FLAGS ())\r\n").is_none());
        assert!(filter_line(b"* CAPABILITYX\r\n").is_none());
        assert!(filter_line(b"* OK [CAPABILITY unterminated\r\n").is_none());
    }

    #[test]
    fn allow_list_is_case_insensitive_and_prefix_aware() {
        assert!(is_allowed(b"imap4rev1"));
        assert!(is_allowed(b"APPENDLIMIT=35651584"));
        assert!(!is_allowed(b"APPENDLIMIT="));
        for stripped in [
            &b"SORT=DISPLAY"[..],
            b"THREAD=REFS",
            b"IMAP4rev2",
            b"MULTIAPPEND",
            b"CATENATE",
            b"ACL",
            b"RIGHTS=texk",
            b"ESEARCH",
            b"SEARCHRES",
        ] {
            assert!(
                !is_allowed(stripped),
                "{}",
                String::from_utf8_lossy(stripped)
            );
        }
        assert!(!is_allowed(b"COMPRESS=DEFLATE"));
        assert!(!is_allowed(b"\xff"));
    }
}
