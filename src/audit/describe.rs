//! Turning a client command into a [`CommandRecord`]: what was asked, about
//! which mailbox and messages, without any of the data the command carries.
//!
//! The command is decoded with imap-codec's `CommandCodec` (the relay
//! forwards the raw bytes; this is only for the record). What is kept:
//! verb, mailbox names, sequence/UID sets, FETCH item names, STORE/STATUS
//! items, and search criteria with every string replaced by its length.
//! Never kept: LOGIN/AUTHENTICATE arguments, APPEND message data, search
//! strings, SETQUOTA/METADATA values.

use std::fmt::Write as _;

use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::{AString, IString, NString};
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Part, Section,
};
use imap_codec::imap_types::flag::StoreType;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_codec::CommandCodec;

use super::record::{clean, clean_to, CommandRecord};
use crate::imap::command::parse_head;

/// Longest set, item list or criteria text kept.
const MAX_DETAIL_CHARS: usize = 1024;
/// Messages larger than this (an APPEND with its message) are not decoded:
/// the first line gives the verb, which is all that would be kept anyway.
const MAX_DECODED_BYTES: usize = 64 * 1024;

/// The `ID` parameters a client sent, cleaned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientIdent {
    pub name: Option<String>,
    pub version: Option<String>,
    pub os: Option<String>,
}

/// What one complete client message says.
pub struct Described {
    pub record: CommandRecord,
    /// Set for `ID`.
    pub client_id: Option<ClientIdent>,
    /// The command selects a mailbox (SELECT/EXAMINE).
    pub selects: bool,
}

/// Describes one complete client message (its line and literals).
pub fn describe(message: &[u8]) -> Described {
    if message.len() <= MAX_DECODED_BYTES {
        if let Ok((_, command)) = CommandCodec::default().decode(message) {
            return from_body(command.body);
        }
    }
    Described {
        record: verb_only(message),
        client_id: None,
        selects: false,
    }
}

/// The record for a message known only by its first line.
pub fn verb_only(line: &[u8]) -> CommandRecord {
    let verb = parse_head(line).map_or("?".to_string(), |h| {
        let verb = clean_to(&h.verb.to_ascii_uppercase(), 32);
        if h.uid {
            format!("UID {verb}")
        } else {
            verb
        }
    });
    CommandRecord {
        verb,
        unparsed: true,
        ..Default::default()
    }
}

/// The client's `ID` parameters: name, version and os only.
pub fn client_ident(parameters: &[(IString<'_>, NString<'_>)]) -> ClientIdent {
    let mut ident = ClientIdent::default();
    for (key, value) in parameters {
        let Some(value) = value.0.as_ref() else {
            continue;
        };
        let slot = match key.as_ref().to_ascii_lowercase().as_slice() {
            b"name" => &mut ident.name,
            b"version" => &mut ident.version,
            b"os" => &mut ident.os,
            _ => continue,
        };
        *slot = Some(clean_to(value.as_ref(), 128));
    }
    ident
}

fn from_body(body: CommandBody<'_>) -> Described {
    let mut r = CommandRecord {
        verb: body.name().to_string(),
        ..Default::default()
    };
    let mut client_id = None;
    let mut selects = false;
    let uid_verb = |r: &mut CommandRecord, uid: bool| {
        if uid {
            r.verb = format!("UID {}", r.verb);
        }
    };
    match body {
        CommandBody::Select { mailbox, .. } | CommandBody::Examine { mailbox, .. } => {
            r.mailbox = Some(mailbox_name(&mailbox));
            selects = true;
        }
        CommandBody::Create { mailbox }
        | CommandBody::Delete { mailbox }
        | CommandBody::Subscribe { mailbox }
        | CommandBody::Unsubscribe { mailbox }
        | CommandBody::GetQuotaRoot { mailbox } => r.mailbox = Some(mailbox_name(&mailbox)),
        CommandBody::Append { mailbox, .. } => r.mailbox = Some(mailbox_name(&mailbox)),
        CommandBody::Rename { from, to } => {
            r.mailbox = Some(mailbox_name(&from));
            r.target = Some(mailbox_name(&to));
        }
        CommandBody::List {
            reference,
            mailbox_wildcard,
        }
        | CommandBody::Lsub {
            reference,
            mailbox_wildcard,
        } => {
            r.mailbox = Some(mailbox_name(&reference));
            r.target = Some(match &mailbox_wildcard {
                ListMailbox::Token(t) => clean(t.as_ref()),
                ListMailbox::String(s) => clean(s.as_ref()),
            });
        }
        CommandBody::Status {
            mailbox,
            item_names,
        } => {
            r.mailbox = Some(mailbox_name(&mailbox));
            let names: Vec<String> = item_names
                .iter()
                .map(|i| format!("{i:?}").to_ascii_uppercase())
                .collect();
            r.items = Some(format!("({})", names.join(" ")));
        }
        CommandBody::Fetch {
            sequence_set,
            macro_or_item_names,
            uid,
            ..
        } => {
            uid_verb(&mut r, uid);
            r.set = Some(set_text(&sequence_set));
            r.items = Some(fetch_items(&macro_or_item_names));
        }
        CommandBody::Store {
            sequence_set,
            kind,
            flags,
            uid,
            ..
        } => {
            uid_verb(&mut r, uid);
            r.set = Some(set_text(&sequence_set));
            let op = match kind {
                StoreType::Add => "+FLAGS",
                StoreType::Remove => "-FLAGS",
                StoreType::Replace => "FLAGS",
            };
            let flags: Vec<String> = flags
                .iter()
                .map(|f| clean_to(f.to_string().as_bytes(), 64))
                .collect();
            r.items = Some(cut(format!("{op} ({})", flags.join(" "))));
        }
        CommandBody::Copy {
            sequence_set,
            mailbox,
            uid,
        }
        | CommandBody::Move {
            sequence_set,
            mailbox,
            uid,
        } => {
            uid_verb(&mut r, uid);
            r.set = Some(set_text(&sequence_set));
            r.mailbox = Some(mailbox_name(&mailbox));
        }
        CommandBody::ExpungeUid { sequence_set } => {
            uid_verb(&mut r, true);
            r.set = Some(set_text(&sequence_set));
        }
        CommandBody::Search { criteria, uid, .. } => {
            uid_verb(&mut r, uid);
            r.criteria = Some(criteria_text(criteria.as_ref()));
        }
        CommandBody::Sort {
            search_criteria,
            uid,
            ..
        }
        | CommandBody::Thread {
            search_criteria,
            uid,
            ..
        } => {
            uid_verb(&mut r, uid);
            r.criteria = Some(criteria_text(search_criteria.as_ref()));
        }
        CommandBody::Enable { capabilities } => {
            let caps: Vec<String> = capabilities
                .as_ref()
                .iter()
                .map(|c| clean_to(c.to_string().as_bytes(), 64))
                .collect();
            r.items = Some(cut(caps.join(" ")));
        }
        CommandBody::Id { parameters } => {
            client_id = Some(client_ident(parameters.as_deref().unwrap_or(&[])));
        }
        // LOGIN/AUTHENTICATE never reach here after login (refused), and
        // their arguments are never recorded; the rest has no arguments
        // worth keeping.
        _ => {}
    }
    Described {
        record: r,
        client_id,
        selects,
    }
}

fn mailbox_name(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(other) => clean(other.as_ref()),
    }
}

fn cut(text: String) -> String {
    if text.chars().count() <= MAX_DETAIL_CHARS {
        text
    } else {
        clean_to(text.as_bytes(), MAX_DETAIL_CHARS)
    }
}

fn set_text(set: &SequenceSet) -> String {
    let mut out = String::new();
    for (i, seq) in set.0.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match seq {
            Sequence::Single(s) => push_seq(&mut out, s),
            Sequence::Range(a, b) => {
                push_seq(&mut out, a);
                out.push(':');
                push_seq(&mut out, b);
            }
        }
        if out.len() > MAX_DETAIL_CHARS {
            break;
        }
    }
    cut(out)
}

fn push_seq(out: &mut String, s: &SeqOrUid) {
    match s {
        SeqOrUid::Value(n) => {
            let _ = write!(out, "{n}");
        }
        SeqOrUid::Asterisk => out.push('*'),
    }
}

fn fetch_items(items: &MacroOrMessageDataItemNames<'_>) -> String {
    let names = match items {
        MacroOrMessageDataItemNames::Macro(m) => {
            return match m {
                Macro::All => "ALL".into(),
                Macro::Fast => "FAST".into(),
                Macro::Full => "FULL".into(),
                other => format!("{other:?}").to_ascii_uppercase(),
            }
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
    };
    let names: Vec<String> = names.iter().map(item_name).collect();
    cut(format!("({})", names.join(" ")))
}

fn item_name(item: &MessageDataItemName<'_>) -> String {
    let partial = |p: &Option<(u32, std::num::NonZeroU32)>| {
        p.map_or(String::new(), |(start, len)| format!("<{start}.{len}>"))
    };
    match item {
        MessageDataItemName::Body => "BODY".into(),
        MessageDataItemName::BodyExt {
            section,
            partial: p,
            peek,
        } => format!(
            "BODY{}[{}]{}",
            if *peek { ".PEEK" } else { "" },
            section.as_ref().map_or(String::new(), section_text),
            partial(p)
        ),
        MessageDataItemName::BodyStructure => "BODYSTRUCTURE".into(),
        MessageDataItemName::Envelope => "ENVELOPE".into(),
        MessageDataItemName::Flags => "FLAGS".into(),
        MessageDataItemName::InternalDate => "INTERNALDATE".into(),
        MessageDataItemName::Rfc822 => "RFC822".into(),
        MessageDataItemName::Rfc822Header => "RFC822.HEADER".into(),
        MessageDataItemName::Rfc822Size => "RFC822.SIZE".into(),
        MessageDataItemName::Rfc822Text => "RFC822.TEXT".into(),
        MessageDataItemName::Uid => "UID".into(),
        MessageDataItemName::Binary {
            section,
            partial: p,
            peek,
        } => format!(
            "BINARY{}[{}]{}",
            if *peek { ".PEEK" } else { "" },
            numbers(section),
            partial(p)
        ),
        MessageDataItemName::BinarySize { section } => format!("BINARY.SIZE[{}]", numbers(section)),
        MessageDataItemName::ModSeq => "MODSEQ".into(),
    }
}

fn numbers(parts: &[std::num::NonZeroU32]) -> String {
    let parts: Vec<String> = parts.iter().map(|n| n.to_string()).collect();
    parts.join(".")
}

fn section_text(section: &Section<'_>) -> String {
    let prefix = |part: &Option<Part>| {
        part.as_ref()
            .map_or(String::new(), |p| format!("{}.", numbers(p.0.as_ref())))
    };
    let fields = |list: &[AString<'_>]| {
        let names: Vec<String> = list.iter().map(|f| clean_to(f.as_ref(), 64)).collect();
        names.join(" ")
    };
    match section {
        Section::Part(p) => numbers(p.0.as_ref()),
        Section::Header(p) => format!("{}HEADER", prefix(p)),
        Section::HeaderFields(p, list) => {
            format!("{}HEADER.FIELDS ({})", prefix(p), fields(list.as_ref()))
        }
        Section::HeaderFieldsNot(p, list) => {
            format!("{}HEADER.FIELDS.NOT ({})", prefix(p), fields(list.as_ref()))
        }
        Section::Text(p) => format!("{}TEXT", prefix(p)),
        Section::Mime(p) => format!("{}.MIME", numbers(p.0.as_ref())),
    }
}

fn criteria_text(keys: &[SearchKey<'_>]) -> String {
    let mut out = String::new();
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_key(&mut out, key, 0);
    }
    cut(out)
}

/// Nesting deeper than this is written as `…` (the parser bounds it too).
const MAX_DEPTH: usize = 16;

fn push_key(out: &mut String, key: &SearchKey<'_>, depth: usize) {
    if depth > MAX_DEPTH || out.len() > MAX_DETAIL_CHARS {
        out.push('…');
        return;
    }
    let text = |out: &mut String, name: &str, s: &AString<'_>| {
        let _ = write!(out, "{name} <{} bytes>", s.as_ref().len());
    };
    match key {
        SearchKey::And(keys) => {
            out.push('(');
            for (i, k) in keys.as_ref().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                push_key(out, k, depth + 1);
            }
            out.push(')');
        }
        SearchKey::SequenceSet(set) => out.push_str(&set_text(set)),
        SearchKey::Uid(set) => {
            let _ = write!(out, "UID {}", set_text(set));
        }
        SearchKey::All => out.push_str("ALL"),
        SearchKey::Answered => out.push_str("ANSWERED"),
        SearchKey::Deleted => out.push_str("DELETED"),
        SearchKey::Draft => out.push_str("DRAFT"),
        SearchKey::Flagged => out.push_str("FLAGGED"),
        SearchKey::New => out.push_str("NEW"),
        SearchKey::Old => out.push_str("OLD"),
        SearchKey::Recent => out.push_str("RECENT"),
        SearchKey::Seen => out.push_str("SEEN"),
        SearchKey::Unanswered => out.push_str("UNANSWERED"),
        SearchKey::Undeleted => out.push_str("UNDELETED"),
        SearchKey::Undraft => out.push_str("UNDRAFT"),
        SearchKey::Unflagged => out.push_str("UNFLAGGED"),
        SearchKey::Unseen => out.push_str("UNSEEN"),
        SearchKey::Bcc(s) => text(out, "BCC", s),
        SearchKey::Body(s) => text(out, "BODY", s),
        SearchKey::Cc(s) => text(out, "CC", s),
        SearchKey::From(s) => text(out, "FROM", s),
        SearchKey::Subject(s) => text(out, "SUBJECT", s),
        SearchKey::Text(s) => text(out, "TEXT", s),
        SearchKey::To(s) => text(out, "TO", s),
        SearchKey::Header(field, value) => {
            let _ = write!(
                out,
                "HEADER {} <{} bytes>",
                clean_to(field.as_ref(), 64),
                value.as_ref().len()
            );
        }
        SearchKey::Keyword(k) => {
            let _ = write!(out, "KEYWORD {}", clean_to(k.inner().as_bytes(), 64));
        }
        SearchKey::Unkeyword(k) => {
            let _ = write!(out, "UNKEYWORD {}", clean_to(k.inner().as_bytes(), 64));
        }
        SearchKey::Larger(n) => {
            let _ = write!(out, "LARGER {n}");
        }
        SearchKey::Smaller(n) => {
            let _ = write!(out, "SMALLER {n}");
        }
        SearchKey::Older(n) => {
            let _ = write!(out, "OLDER {n}");
        }
        SearchKey::Younger(n) => {
            let _ = write!(out, "YOUNGER {n}");
        }
        SearchKey::Before(d) => date(out, "BEFORE", d),
        SearchKey::On(d) => date(out, "ON", d),
        SearchKey::Since(d) => date(out, "SINCE", d),
        SearchKey::SentBefore(d) => date(out, "SENTBEFORE", d),
        SearchKey::SentOn(d) => date(out, "SENTON", d),
        SearchKey::SentSince(d) => date(out, "SENTSINCE", d),
        SearchKey::Not(k) => {
            out.push_str("NOT ");
            push_key(out, k, depth + 1);
        }
        SearchKey::Or(a, b) => {
            out.push_str("OR ");
            push_key(out, a, depth + 1);
            out.push(' ');
            push_key(out, b, depth + 1);
        }
        SearchKey::ModSequence { modseq, .. } => {
            let _ = write!(out, "MODSEQ {modseq}");
        }
    }
}

fn date(out: &mut String, name: &str, d: &imap_codec::imap_types::datetime::NaiveDate) {
    // chrono's Debug for a date is ISO 8601 (2024-01-31).
    let _ = write!(out, "{name} {d:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(cmd: &str) -> CommandRecord {
        describe(cmd.as_bytes()).record
    }

    #[test]
    fn fetch_keeps_set_and_item_names() {
        let r = rec("a1 UID FETCH 1:5,9,20:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[]<0.65536> BINARY[1.2] RFC822.SIZE)\r\n");
        assert_eq!(r.verb, "UID FETCH");
        assert_eq!(r.set.as_deref(), Some("1:5,9,20:*"));
        assert_eq!(
            r.items.as_deref(),
            Some("(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[]<0.65536> BINARY[1.2] RFC822.SIZE)")
        );
        assert!(!r.unparsed);
        assert_eq!(rec("b FETCH 1 ALL\r\n").items.as_deref(), Some("ALL"));
    }

    #[test]
    fn search_strings_become_lengths() {
        let r = rec("s SEARCH CHARSET UTF-8 OR BODY {4}\r\nAB12 SUBJECT \"gift code\" SINCE 1-Feb-2024 NOT SEEN\r\n");
        assert_eq!(r.verb, "SEARCH");
        let c = r.criteria.unwrap();
        assert_eq!(
            c,
            "OR BODY <4 bytes> SUBJECT <9 bytes> SINCE 2024-02-01 NOT SEEN"
        );
        let r = rec("t UID SEARCH HEADER Message-ID \"<x@y>\" UID 1:*\r\n");
        assert_eq!(r.verb, "UID SEARCH");
        assert_eq!(
            r.criteria.as_deref(),
            Some("HEADER Message-ID <5 bytes> UID 1:*")
        );
    }

    #[test]
    fn mailboxes_and_moves() {
        assert_eq!(rec("a select inbox\r\n").mailbox.as_deref(), Some("INBOX"));
        let r = rec("m UID MOVE 3:4 \"Archive/2024\"\r\n");
        assert_eq!(
            (r.verb.as_str(), r.set.as_deref(), r.mailbox.as_deref()),
            ("UID MOVE", Some("3:4"), Some("Archive/2024"))
        );
        let r = rec("r RENAME a b\r\n");
        assert_eq!(
            (r.mailbox.as_deref(), r.target.as_deref()),
            (Some("a"), Some("b"))
        );
        let r = rec("l LIST \"\" \"*\"\r\n");
        assert_eq!(
            (r.mailbox.as_deref(), r.target.as_deref()),
            (Some(""), Some("*"))
        );
        let r = rec("s STORE 1 +FLAGS.SILENT (\\Seen)\r\n");
        assert_eq!(r.items.as_deref(), Some("+FLAGS (\\Seen)"));
    }

    #[test]
    fn append_keeps_the_mailbox_but_not_the_message() {
        let d = describe(b"a APPEND Drafts (\\Seen) {11}\r\nhello world\r\n");
        assert_eq!(d.record.mailbox.as_deref(), Some("Drafts"));
        let json = serde_json::to_string(&d.record).unwrap();
        assert!(!json.contains("hello"), "{json}");
    }

    #[test]
    fn undecodable_commands_keep_the_verb_only() {
        let r = rec("x XFOO bar baz\r\n");
        assert_eq!((r.verb.as_str(), r.unparsed), ("XFOO", true));
        assert!(r.set.is_none() && r.items.is_none());
        let r = rec("x uid xfoo 1\r\n");
        assert_eq!(r.verb, "UID XFOO");
    }

    #[test]
    fn id_parameters_are_read_and_cleaned() {
        let d = describe(b"i ID (\"name\" \"Thunderbird\" \"version\" \"115.3\" \"os\" \"Linux\x7f\" \"support-url\" \"x\")\r\n");
        assert_eq!(
            d.client_id,
            Some(ClientIdent {
                name: Some("Thunderbird".into()),
                version: Some("115.3".into()),
                os: Some("Linux?".into()),
            })
        );
        assert_eq!(
            describe(b"i ID NIL\r\n").client_id,
            Some(ClientIdent::default())
        );
    }
}
