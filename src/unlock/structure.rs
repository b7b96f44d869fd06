//! `BODYSTRUCTURE`, `BODY` and `ENVELOPE` of an original (RFC 3501 7.4.2),
//! built from its MIME tree ([`super::mime`]) and its header values
//! (parsed by mail-parser), as imap-types values for the encoder.
//!
//! Strings are the header's own text where IMAP wants it so (subject, date,
//! message ids, parameters); address display names come decoded from
//! RFC 2047 by mail-parser (a server sends them encoded; either reads the
//! same in a client).

use std::borrow::Cow;

use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_codec::imap_types::core::{IString, NString, Vec1};
use imap_codec::imap_types::envelope::{Address, Envelope};
use mail_parser::{Addr, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders};

use super::mime::{field_value, Content, Entity};

/// The structure cannot be rendered (a value IMAP cannot carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unrenderable;

/// `BODYSTRUCTURE` (`extended`) or `BODY` of `entity`.
pub fn body_structure(
    raw: &[u8],
    entity: &Entity,
    extended: bool,
) -> Result<BodyStructure<'static>, Unrenderable> {
    let header = headers(&raw[entity.header.clone()]);
    let ct = header.as_ref().and_then(|h| h.content_type());
    match &entity.content {
        Content::Multipart(parts) => {
            let bodies = parts
                .iter()
                .map(|p| body_structure(raw, p, extended))
                .collect::<Result<Vec<_>, _>>()?;
            let subtype = ct.and_then(|c| c.c_subtype.as_deref()).unwrap_or("mixed");
            let extension_data = extended
                .then(|| {
                    Ok::<_, Unrenderable>(MultiPartExtensionData {
                        parameter_list: parameters(ct)?,
                        tail: Some(disposition(header.as_ref())?),
                    })
                })
                .transpose()?;
            Ok(BodyStructure::Multi {
                bodies: Vec1::try_from(bodies).map_err(|_| Unrenderable)?,
                subtype: istring(subtype.as_bytes())?,
                extension_data,
            })
        }
        content => {
            let body_bytes = &raw[entity.body.clone()];
            let (kind, subtype) = match ct {
                Some(c) => (
                    c.c_type.to_string(),
                    c.c_subtype.as_deref().unwrap_or("").to_string(),
                ),
                None if matches!(content, Content::Message(_)) => {
                    ("message".into(), "rfc822".into())
                }
                None => ("text".into(), "plain".into()),
            };
            let mut parameter_list = parameters(ct)?;
            if ct.is_none() && kind == "text" {
                parameter_list.push((istring(b"charset")?, istring(b"us-ascii")?));
            }
            let cte = field_value(&raw[entity.header.clone()], b"Content-Transfer-Encoding")
                .unwrap_or_else(|| b"7bit".to_vec());
            let basic = BasicFields {
                parameter_list,
                id: nstring(text_value(header.as_ref(), HeaderName::ContentId))?,
                description: nstring(text_value(header.as_ref(), HeaderName::ContentDescription))?,
                content_transfer_encoding: istring(&cte)?,
                size: u32::try_from(body_bytes.len()).map_err(|_| Unrenderable)?,
            };
            let lines = line_count(body_bytes);
            let specific = match content {
                Content::Message(inner) => SpecificFields::Message {
                    envelope: Box::new(envelope(&raw[inner.header.clone()])?),
                    body_structure: Box::new(body_structure(raw, inner, extended)?),
                    number_of_lines: lines,
                },
                _ if kind.eq_ignore_ascii_case("text") => SpecificFields::Text {
                    subtype: istring(subtype.as_bytes())?,
                    number_of_lines: lines,
                },
                _ => SpecificFields::Basic {
                    r#type: istring(kind.as_bytes())?,
                    subtype: istring(subtype.as_bytes())?,
                },
            };
            let extension_data = extended
                .then(|| {
                    let md5 = field_value(&raw[entity.header.clone()], b"Content-MD5");
                    Ok::<_, Unrenderable>(SinglePartExtensionData {
                        md5: nstring(md5.map(Cow::Owned))?,
                        tail: Some(disposition(header.as_ref())?),
                    })
                })
                .transpose()?;
            Ok(BodyStructure::Single {
                body: Body { basic, specific },
                extension_data,
            })
        }
    }
}

/// `ENVELOPE` of the message whose header block is `header`.
pub fn envelope(header: &[u8]) -> Result<Envelope<'static>, Unrenderable> {
    let parsed = headers(header);
    let raw = |name: &[u8]| nstring(field_value(header, name).map(Cow::Owned));
    let list = |name: HeaderName<'static>, bytes: &[u8]| {
        addresses(parsed.as_ref(), Some(header), name, bytes)
    };
    let from = list(HeaderName::From, b"From")?;
    // RFC 3501: sender and reply-to default to from.
    let or_from = |l: Vec<Address<'static>>| if l.is_empty() { from.clone() } else { l };
    Ok(Envelope {
        date: raw(b"Date")?,
        subject: raw(b"Subject")?,
        sender: or_from(list(HeaderName::Sender, b"Sender")?),
        reply_to: or_from(list(HeaderName::ReplyTo, b"Reply-To")?),
        from,
        to: list(HeaderName::To, b"To")?,
        cc: list(HeaderName::Cc, b"Cc")?,
        bcc: list(HeaderName::Bcc, b"Bcc")?,
        in_reply_to: raw(b"In-Reply-To")?,
        message_id: raw(b"Message-ID")?,
    })
}

fn headers(header: &[u8]) -> Option<Message<'_>> {
    MessageParser::new().parse_headers(header)
}

/// The addresses of field `name` (`name_bytes` as written); display names
/// as the header has them (RFC 2047 words not decoded, as servers send
/// them) where they can be found there, else mail-parser's.
fn addresses(
    parsed: Option<&Message<'_>>,
    header: Option<&[u8]>,
    name: HeaderName<'static>,
    name_bytes: &[u8],
) -> Result<Vec<Address<'static>>, Unrenderable> {
    let Some(address) = parsed
        .and_then(|m| m.header(name))
        .and_then(HeaderValue::as_address)
    else {
        return Ok(Vec::new());
    };
    let marker = |mailbox: NString<'static>| Address {
        name: NString::NIL,
        adl: NString::NIL,
        mailbox,
        host: NString::NIL,
    };
    let raw_field = header.and_then(|h| field_value(h, name_bytes));
    let one_address = |addr: &Addr<'_>| one_address(addr, raw_field.as_deref());
    let mut out = Vec::new();
    match address {
        mail_parser::Address::List(list) => {
            for addr in list {
                out.push(one_address(addr)?);
            }
        }
        mail_parser::Address::Group(groups) => {
            for group in groups {
                // Group syntax: a start marker (host NIL), the members, an end marker.
                let name = group.name.as_deref();
                if let Some(name) = name {
                    out.push(marker(nstring(Some(Cow::Borrowed(name.as_bytes())))?));
                }
                for addr in &group.addresses {
                    out.push(one_address(addr)?);
                }
                if name.is_some() {
                    out.push(marker(NString::NIL));
                }
            }
        }
    }
    Ok(out)
}

fn one_address(
    addr: &Addr<'_>,
    raw_field: Option<&[u8]>,
) -> Result<Address<'static>, Unrenderable> {
    let full = addr.address.as_deref().unwrap_or("");
    let (mailbox, host) = full.rsplit_once('@').unwrap_or((full, ""));
    let raw_name = raw_field.and_then(|f| raw_display_name(f, full.as_bytes()));
    let name = match raw_name {
        Some(raw) => Some(Cow::Owned(raw)),
        None => addr.name.as_deref().map(|n| Cow::Borrowed(n.as_bytes())),
    };
    Ok(Address {
        name: nstring(name)?,
        adl: NString::NIL,
        mailbox: nstring(Some(Cow::Borrowed(mailbox.as_bytes())))?,
        host: nstring((!host.is_empty()).then_some(Cow::Borrowed(host.as_bytes())))?,
    })
}

/// The display name written before `<address>` in an address field's
/// unfolded value, unquoted; `None` when there is none or it is not found.
fn raw_display_name(field: &[u8], address: &[u8]) -> Option<Vec<u8>> {
    let target = [b"<", address, b">"].concat();
    let at = memchr::memmem::find(field, &target)?;
    // The item starts after the last comma or colon outside quotes before it.
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in field[..at].iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' | b':' | b';' if !quoted => start = i + 1,
            _ => {}
        }
    }
    let name = field[start..at].trim_ascii();
    if name.is_empty() {
        return None;
    }
    let Some(inner) = name.strip_prefix(b"\"").and_then(|n| n.strip_suffix(b"\"")) else {
        return Some(name.to_vec());
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.extend(bytes.next()),
            _ => out.push(b),
        }
    }
    Some(out)
}

fn text_value(
    parsed: Option<&Message<'_>>,
    name: HeaderName<'static>,
) -> Option<Cow<'static, [u8]>> {
    let value = parsed?.header(name)?.as_text()?;
    Some(Cow::Owned(value.as_bytes().to_vec()))
}

/// The parameters of a Content-Type or Content-Disposition, in order (a
/// multipart's boundary included, as servers send it).
fn parameters(
    ct: Option<&mail_parser::ContentType<'_>>,
) -> Result<Vec<(IString<'static>, IString<'static>)>, Unrenderable> {
    let Some(attributes) = ct.and_then(|c| c.attributes()) else {
        return Ok(Vec::new());
    };
    attributes
        .iter()
        .map(|a| Ok((istring(a.name.as_bytes())?, istring(a.value.as_bytes())?)))
        .collect()
}

/// Disposition, language and location, as the extension data's tail.
fn disposition(parsed: Option<&Message<'_>>) -> Result<Disposition<'static>, Unrenderable> {
    let disposition = match parsed.and_then(|m| m.content_disposition()) {
        Some(d) => Some((istring(d.c_type.as_bytes())?, parameters(Some(d))?)),
        None => None,
    };
    let language = match parsed
        .and_then(|m| m.header(HeaderName::ContentLanguage))
        .and_then(|v| match v {
            HeaderValue::Text(t) => Some(vec![t.to_string()]),
            HeaderValue::TextList(l) => Some(l.iter().map(|t| t.to_string()).collect()),
            _ => None,
        }) {
        Some(list) => list
            .iter()
            .map(|l| istring(l.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let location = nstring(text_value(parsed, HeaderName::ContentLocation))?;
    Ok(Disposition {
        disposition,
        tail: Some(Language {
            language,
            tail: Some(Location {
                location,
                extensions: Vec::new(),
            }),
        }),
    })
}

/// Lines of a body as Dovecot counts them: its line feeds (a last line
/// without one, before a boundary, is not counted).
fn line_count(body: &[u8]) -> u32 {
    u32::try_from(memchr::memchr_iter(b'\n', body).count()).unwrap_or(u32::MAX)
}

fn istring(bytes: &[u8]) -> Result<IString<'static>, Unrenderable> {
    IString::try_from(bytes.to_vec()).map_err(|_| Unrenderable)
}

fn nstring(value: Option<Cow<'_, [u8]>>) -> Result<NString<'static>, Unrenderable> {
    match value {
        Some(v) => Ok(NString(Some(istring(&v)?))),
        None => Ok(NString::NIL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_taken_as_written() {
        let field = b"=?UTF-8?B?57eP5YuZ6YOo?= <soumu@example.co.jp>, \"B, \\\"C\\\"\" <b@example.org>, c@example.net";
        assert_eq!(
            raw_display_name(field, b"soumu@example.co.jp").as_deref(),
            Some(&b"=?UTF-8?B?57eP5YuZ6YOo?="[..])
        );
        assert_eq!(
            raw_display_name(field, b"b@example.org").as_deref(),
            Some(&b"B, \"C\""[..])
        );
        assert_eq!(raw_display_name(field, b"c@example.net"), None);
    }

    #[test]
    fn lines_are_line_feeds() {
        assert_eq!(line_count(b"one\r\ntwo"), 1);
        assert_eq!(line_count(b"one\r\ntwo\r\n"), 2);
        assert_eq!(line_count(b""), 0);
    }
}
