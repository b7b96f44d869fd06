//! A text view of HTML that maps back to the HTML source.
//!
//! The view is what a reader sees: tags removed, entities decoded, block
//! tags turned into line breaks, `<script>`/`<style>` and comments dropped.
//! Inline tags vanish without a trace, so `<span>AB12</span>-<span>CD34`
//! reads `AB12-CD34` and is matched as one code. Attribute values that hold
//! links or shown text (`href`, `src`, `alt`, `title`, `value`, `data-*` ...)
//! are returned as separate views, scanned as URLs.

use std::ops::Range;

/// Text derived from a source string, with the source range of every
/// character.
#[derive(Debug, Default)]
pub struct View {
    pub text: String,
    spans: Vec<ViewSpan>,
}

#[derive(Clone, Copy, Debug)]
struct ViewSpan {
    view: u32,
    source: u32,
    /// A run copied as is (`source_len == 0`), or one character standing
    /// for `source_len` source bytes (an entity, or a tag read as a break).
    copied_len: u32,
    source_len: u32,
}

impl View {
    fn copy(&mut self, source: &str, range: Range<usize>) {
        let Some(s) = source.get(range.clone()) else {
            return;
        };
        if s.is_empty() {
            return;
        }
        self.spans.push(ViewSpan {
            view: self.text.len() as u32,
            source: range.start as u32,
            copied_len: s.len() as u32,
            source_len: 0,
        });
        self.text.push_str(s);
    }

    fn char(&mut self, c: char, source: Range<usize>) {
        self.spans.push(ViewSpan {
            view: self.text.len() as u32,
            source: source.start as u32,
            copied_len: 0,
            source_len: source.len() as u32,
        });
        self.text.push(c);
    }

    /// The source bytes behind the view character at byte `at`, and whether
    /// it is a plain copy of them (false for an entity or a tag).
    pub fn source_of(&self, at: usize) -> Option<(Range<usize>, bool)> {
        let i = self
            .spans
            .partition_point(|s| s.view as usize <= at)
            .checked_sub(1)?;
        let span = self.spans.get(i)?;
        let offset = at - span.view as usize;
        if span.copied_len > 0 {
            let len = self.text.get(at..)?.chars().next()?.len_utf8();
            (offset < span.copied_len as usize).then(|| {
                let start = span.source as usize + offset;
                (start..start + len, true)
            })
        } else {
            (offset == 0).then(|| {
                let start = span.source as usize;
                (start..start + span.source_len as usize, false)
            })
        }
    }
}

/// Attributes whose values are links or text shown to the reader.
const SCANNED_ATTRIBUTES: &[&str] = &[
    "action",
    "alt",
    "background",
    "cite",
    "content",
    "formaction",
    "href",
    "poster",
    "src",
    "title",
    "value",
];

/// Where a walk over HTML puts what a reader sees: a [`View`] with its map
/// back to the source, or only the text.
trait Sink {
    /// Appends `source[range]` as it is.
    fn copy(&mut self, source: &str, range: Range<usize>);
    /// Appends `c`, standing for `source` (an entity, a tag read as a break).
    fn char(&mut self, c: char, source: Range<usize>);
}

impl Sink for View {
    fn copy(&mut self, source: &str, range: Range<usize>) {
        View::copy(self, source, range);
    }

    fn char(&mut self, c: char, source: Range<usize>) {
        View::char(self, c, source);
    }
}

impl Sink for String {
    fn copy(&mut self, source: &str, range: Range<usize>) {
        self.push_str(source.get(range).unwrap_or_default());
    }

    fn char(&mut self, c: char, _source: Range<usize>) {
        self.push(c);
    }
}

/// Builds the reader's view of `html` and the views of its scanned
/// attribute values.
pub fn views(html: &str) -> (View, Vec<View>) {
    let mut view = View::default();
    let mut attributes = Vec::new();
    walk(html, &mut view, |value| {
        let mut attr_view = View::default();
        decode_entities(html, value, &mut attr_view);
        if !attr_view.text.is_empty() {
            attributes.push(attr_view);
        }
    });
    (view, attributes)
}

/// The texts of [`views`] without their maps, in buffers reused from one
/// HTML text to the next: what the prefilter reads. The attribute texts
/// are pieces of one join, so one check of it can prove them all clean.
#[derive(Debug, Default)]
pub(crate) struct Texts {
    /// The text of the reader's view.
    pub view: String,
    /// Every attribute view's text, each followed by a line break.
    pub attributes: String,
    /// Where each attribute view's text lies in `attributes`.
    pieces: Vec<Range<usize>>,
}

impl Texts {
    /// Reads `html`: afterwards the texts are those of `views(html)`.
    pub fn read(&mut self, html: &str) {
        let Texts {
            view,
            attributes,
            pieces,
        } = self;
        view.clear();
        attributes.clear();
        pieces.clear();
        walk(html, view, |value| {
            let start = attributes.len();
            decode_entities(html, value, attributes);
            if attributes.len() > start {
                pieces.push(start..attributes.len());
                attributes.push('\n');
            }
        });
    }

    /// The text of each attribute view, in order.
    pub fn attribute_texts(&self) -> impl Iterator<Item = &str> {
        self.pieces
            .iter()
            .map(|piece| self.attributes.get(piece.clone()).unwrap_or_default())
    }
}

/// Walks `html` as a reader sees it: the visible text into `view`, the
/// source range of each scanned attribute value to `attribute`.
fn walk(html: &str, view: &mut impl Sink, mut attribute: impl FnMut(Range<usize>)) {
    let bytes = html.as_bytes();
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => {
                let Some(tag) = parse_tag(html, i, &mut attribute) else {
                    i += 1;
                    continue;
                };
                view.copy(html, text_start..i);
                let mut end = tag.end;
                if !tag.closing
                    && (tag.name.eq_ignore_ascii_case("script")
                        || tag.name.eq_ignore_ascii_case("style"))
                {
                    end = skip_raw_text(html, tag.end, tag.name);
                }
                if is_block_tag(tag.name) {
                    view.char('\n', i..end);
                }
                i = end;
                text_start = i;
            }
            b'&' => {
                if let Some(entity) = entity_at(html, i) {
                    i = push_entity(view, html, text_start, i, entity);
                    text_start = i;
                } else {
                    i += 1;
                }
            }
            _ => {
                // Jump to the next byte that can start markup.
                i += memchr::memchr2(b'<', b'&', &bytes[i..]).unwrap_or(bytes.len() - i);
            }
        }
    }
    view.copy(html, text_start..bytes.len());
}

/// Whether a reader sees a line break after a tag of this name.
fn is_block_tag(name: &str) -> bool {
    let mut lower = [0u8; 10];
    let Some(slot) = lower.get_mut(..name.len()) else {
        return false;
    };
    slot.copy_from_slice(name.as_bytes());
    slot.make_ascii_lowercase();
    // A match on the bytes compiles to a few comparisons; a search of a
    // list costs a call per entry, for every tag of a message.
    matches!(
        &*slot,
        b"address"
            | b"article"
            | b"aside"
            | b"blockquote"
            | b"body"
            | b"br"
            | b"center"
            | b"dd"
            | b"div"
            | b"dl"
            | b"dt"
            | b"figcaption"
            | b"figure"
            | b"footer"
            | b"form"
            | b"h1"
            | b"h2"
            | b"h3"
            | b"h4"
            | b"h5"
            | b"h6"
            | b"head"
            | b"header"
            | b"hr"
            | b"html"
            | b"li"
            | b"main"
            | b"nav"
            | b"ol"
            | b"option"
            | b"p"
            | b"pre"
            | b"section"
            | b"select"
            | b"table"
            | b"tbody"
            | b"td"
            | b"tfoot"
            | b"th"
            | b"thead"
            | b"title"
            | b"tr"
            | b"ul"
    )
}

struct Tag<'a> {
    name: &'a str,
    closing: bool,
    end: usize,
}

/// Parses the tag, comment or declaration starting at `start` (a `<`),
/// handing the source range of each scanned attribute value to
/// `attribute` (nothing when the result is `None`).
fn parse_tag<'h>(
    html: &'h str,
    start: usize,
    attribute: &mut impl FnMut(Range<usize>),
) -> Option<Tag<'h>> {
    let bytes = html.as_bytes();
    let rest = &bytes[start + 1..];
    if rest.starts_with(b"!--") {
        let end = find(bytes, start + 4, b"-->").map_or(bytes.len(), |p| p + 3);
        return Some(Tag {
            name: "",
            closing: false,
            end,
        });
    }
    let (closing, name_start) = match rest.first()? {
        b'/' => (true, start + 2),
        b'!' | b'?' => (false, start + 2),
        c if c.is_ascii_alphabetic() => (false, start + 1),
        _ => return None,
    };
    let mut i = name_start;
    while i < bytes.len()
        && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-' || bytes[i] == b':')
    {
        i += 1;
    }
    let name = html.get(name_start..i)?;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        match bytes.get(i) {
            None => {
                return Some(Tag {
                    name,
                    closing,
                    end: bytes.len(),
                })
            }
            Some(b'>') => {
                return Some(Tag {
                    name,
                    closing,
                    end: i + 1,
                })
            }
            _ => {}
        }
        let attr_start = i;
        while i < bytes.len()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
            && !bytes[i].is_ascii_whitespace()
        {
            i += 1;
        }
        if i == attr_start {
            // A stray `=` or similar: skip it.
            i += 1;
            continue;
        }
        let attr_name = html.get(attr_start..i).unwrap_or("");
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let end = memchr::memchr(q, &bytes[i + 1..]).map_or(bytes.len(), |p| i + 1 + p);
                let value = i + 1..end;
                i = (end + 1).min(bytes.len());
                value
            }
            _ => {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                start..i
            }
        };
        let scanned = attr_name.len() > 5
            && attr_name.as_bytes()[..5].eq_ignore_ascii_case(b"data-")
            || SCANNED_ATTRIBUTES
                .iter()
                .any(|a| a.eq_ignore_ascii_case(attr_name));
        if scanned && !value.is_empty() {
            attribute(value);
        }
    }
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes.get(from..)?, needle).map(|p| from + p)
}

/// End of a `<script>` or `<style>` element's content and closing tag.
fn skip_raw_text(html: &str, from: usize, name: &str) -> usize {
    let bytes = html.as_bytes();
    let mut i = from;
    while let Some(p) = find(bytes, i, b"</") {
        let after = p + 2;
        if bytes
            .get(after..after + name.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
        {
            return find(bytes, after, b">").map_or(bytes.len(), |e| e + 1);
        }
        i = after;
    }
    bytes.len()
}

/// Decodes entities in `html[range]` into `view` (for attribute values).
fn decode_entities(html: &str, range: Range<usize>, view: &mut impl Sink) {
    let bytes = html.as_bytes().get(..range.end).unwrap_or_default();
    let mut text_start = range.start;
    let mut i = range.start;
    while let Some(found) = bytes.get(i..).and_then(|rest| memchr::memchr(b'&', rest)) {
        i += found;
        if let Some(entity) = entity_at(html, i).filter(|(_, len)| i + len <= range.end) {
            i = push_entity(view, html, text_start, i, entity);
            text_start = i;
        } else {
            i += 1;
        }
    }
    view.copy(html, text_start..range.end);
}

/// Appends the text from `text_start` up to the entity at `at`, then the
/// entity's character (none for an invisible one); returns where the text
/// continues, past the entity.
fn push_entity(
    view: &mut impl Sink,
    html: &str,
    text_start: usize,
    at: usize,
    (c, len): (Option<char>, usize),
) -> usize {
    view.copy(html, text_start..at);
    if let Some(c) = c {
        view.char(c, at..at + len);
    }
    at + len
}

/// Characters a reader does not see; dropped from the view so they cannot
/// split a code.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'
    )
}

/// The entity at `at` (a `&`): its character (None for an invisible one)
/// and its length in bytes, including the `;`.
fn entity_at(html: &str, at: usize) -> Option<(Option<char>, usize)> {
    let bytes = html.as_bytes();
    let body_start = at + 1;
    let semi = bytes
        .get(body_start..(body_start + 12).min(bytes.len()))?
        .iter()
        .position(|&b| b == b';')?;
    let body = html.get(body_start..body_start + semi)?;
    let c = if let Some(num) = body.strip_prefix('#') {
        let value = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(value)?
    } else {
        named_entity(body)?
    };
    Some(((!is_invisible(c)).then_some(c), semi + 2))
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "ensp" | "emsp" | "thinsp" => ' ',
        "shy" => '\u{ad}',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        "ndash" => '–',
        "mdash" => '—',
        "minus" => '−',
        "hyphen" | "dash" => '‐',
        "yen" => '¥',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "middot" => '·',
        "bull" => '•',
        "hellip" => '…',
        "laquo" => '«',
        "raquo" => '»',
        "euro" => '€',
        "pound" => '£',
        "cent" => '¢',
        "times" => '×',
        "colon" => ':',
        "num" => '#',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_tags_vanish_and_blocks_break() {
        let html = "<p>Code:</p><span>AB12</span>-<b>CD34</b><br>end";
        let (view, _) = views(html);
        assert_eq!(view.text, "\nCode:\nAB12-CD34\nend");
        let at = view.text.find("CD34").unwrap();
        let (src, copied) = view.source_of(at).unwrap();
        assert!(copied);
        assert_eq!(&html[src], "C");
    }

    #[test]
    fn entities_map_to_their_source() {
        let html = "AB&#49;2&shy;-&#x43;D";
        let (view, _) = views(html);
        assert_eq!(view.text, "AB12-CD");
        let (src, copied) = view.source_of(2).unwrap();
        assert!(!copied);
        assert_eq!(&html[src], "&#49;");
    }

    #[test]
    fn scripts_comments_skipped_and_urls_returned() {
        let html = "<style>p{}</style><!-- X --><a href=\"https://x/?claimCode=AB12&amp;r=1\" class=c>go</a>";
        let (view, urls) = views(html);
        assert_eq!(view.text, "go");
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0].text, "https://x/?claimCode=AB12&r=1");
        let at = urls[0].text.find("AB12").unwrap();
        assert_eq!(&html[urls[0].source_of(at).unwrap().0], "A");
    }

    #[test]
    fn block_tags_are_found_in_any_case() {
        for tag in ["p", "BR", "Div", "blockquote", "FIGCAPTION", "h6", "tBody"] {
            assert!(is_block_tag(tag), "{tag}");
        }
        for name in [
            "span",
            "a",
            "b",
            "",
            "h7",
            "blockquotes",
            "figcaptions",
            "bodyx",
        ] {
            assert!(!is_block_tag(name), "{name}");
        }
    }

    #[test]
    fn texts_are_the_texts_of_the_views() {
        let mut texts = Texts::default();
        for html in [
            "<p>Code:</p><span>AB12</span>-<b>CD34</b><br>end",
            "AB&#49;2&shy;-&#x43;D",
            "<style>p{}</style><!-- X --><a href=\"https://x/?claimCode=AB12&amp;r=1\" class=c>go</a>",
            "<img alt='&shy;' src=a.png title=\"line\nbreak\" data-x=\"&#10;\">&nbsp;caf\u{e9}",
            "<a href=\"\" title=''>empty</a><a href=x>",
            "<",
            "<a href='x",
            "a < b &c d",
            "",
        ] {
            let (view, attributes) = views(html);
            texts.read(html);
            assert_eq!(texts.view, view.text, "{html}");
            let read: Vec<&str> = texts.attribute_texts().collect();
            let viewed: Vec<&str> = attributes.iter().map(|a| a.text.as_str()).collect();
            assert_eq!(read, viewed, "{html}");
            for text in read {
                assert!(texts.attributes.contains(text));
            }
        }
    }

    #[test]
    fn broken_markup_does_not_panic() {
        for html in [
            "<",
            "<a href=",
            "<a href='x",
            "&#",
            "&#xffffffff;",
            "<script>",
            "a < b &c d",
            "<!--",
            "<a d\u{fffd}\u{fffd}=x>",
        ] {
            let _ = views(html);
        }
    }
}
