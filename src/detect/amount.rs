//! The amount a gift-card mail states for a code, for notifications and
//! listings ("Amazon ¥3,000").
//!
//! Conservative on purpose: an amount is only given when the text near the
//! code (the [`WINDOW`] characters before and after it) holds exactly one
//! distinct amount with an explicit currency: a symbol before the number
//! (`¥3,000`, `￥3,000`, `$25`, `US$25.00`, `€10`, `£20`), `円` after it
//! (`1,500円`), or an ISO code on either side (`JPY 3000`, `25.00 USD`).
//! A bare number, two different amounts (an order with prices), a number
//! glued to letters or digits, or more than seven integer digits give
//! nothing. Full-width digits and commas count as their ASCII forms.

use std::ops::Range;

/// Characters looked at on each side of the code.
pub const WINDOW: usize = 120;
/// Most integer digits of an amount (below ten million).
const MAX_DIGITS: usize = 7;

/// The single amount stated near `code` (a byte range of `text`), as
/// `¥3,000`, `$25.00`, `€10` or `£20`; `None` when there is none or more
/// than one.
pub fn near(text: &str, code: Range<usize>) -> Option<String> {
    let before = window_before(text, code.start);
    let after = window_after(text, code.end);
    let mut found: Option<String> = None;
    for window in [before, after] {
        for amount in amounts(window) {
            match &found {
                Some(seen) if *seen != amount => return None,
                _ => found = Some(amount),
            }
        }
    }
    found
}

/// Every currency amount in `text`, formatted.
fn amounts(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().map(ascii_form).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && glued(chars[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        let Some((number, end)) = number_at(&chars, start) else {
            // Skip the whole run of digits and separators.
            while i < chars.len() && (chars[i].is_ascii_digit() || matches!(chars[i], ',' | '.')) {
                i += 1;
            }
            continue;
        };
        i = end;
        if chars.get(end).is_some_and(|&c| glued(c)) && !matches!(chars.get(end), Some('円')) {
            continue;
        }
        if let Some(symbol) =
            currency_before(&chars[..start]).or_else(|| currency_after(&chars[end..]))
        {
            out.push(format!("{symbol}{number}"));
        }
    }
    out
}

/// A number at `start`: digits with `,` thousands groups and at most two
/// decimals. Returns its text and the index after it.
fn number_at(chars: &[char], start: usize) -> Option<(String, usize)> {
    let mut i = start;
    let mut text = String::new();
    let mut digits = 0;
    let mut group = 0;
    let mut grouped = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            digits += 1;
            group += 1;
            text.push(c);
            i += 1;
        } else if c == ',' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            // Groups after a comma have exactly three digits.
            if grouped && group != 3 || !grouped && group > 3 {
                return None;
            }
            grouped = true;
            group = 0;
            text.push(c);
            i += 1;
        } else {
            break;
        }
    }
    if grouped && group != 3 || digits > MAX_DIGITS || digits == 0 {
        return None;
    }
    if chars.get(i) == Some(&'.') {
        let decimals = chars[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        match decimals {
            0 => {}
            2 => {
                text.extend(&chars[i..i + 3]);
                i += 3;
            }
            _ => return None,
        }
    }
    if text.chars().all(|c| c == '0' || c == ',' || c == '.') {
        return None;
    }
    Some((text, i))
}

/// The currency symbol stated just before a number (spaces allowed).
fn currency_before(head: &[char]) -> Option<&'static str> {
    let trimmed: String = head
        .iter()
        .rev()
        .skip_while(|c| **c == ' ')
        .take(4)
        .collect();
    // `trimmed` is reversed.
    let mut rev = trimmed.chars();
    match rev.next()? {
        '¥' | '￥' => Some("¥"),
        '$' => Some("$"),
        '€' => Some("€"),
        '£' => Some("£"),
        _ => {
            let word: String = trimmed
                .chars()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let before_word = trimmed.chars().nth(3);
            if before_word.is_some_and(|c| c.is_alphanumeric()) {
                return None;
            }
            iso(&word)
        }
    }
}

/// The currency stated just after a number: `円`, or an ISO code.
fn currency_after(tail: &[char]) -> Option<&'static str> {
    let rest: Vec<char> = tail.iter().copied().skip_while(|c| *c == ' ').collect();
    if rest.first() == Some(&'円') {
        return Some("¥");
    }
    let word: String = rest.iter().take(3).collect();
    if rest.get(3).is_some_and(|c| c.is_alphanumeric()) {
        return None;
    }
    iso(&word)
}

fn iso(word: &str) -> Option<&'static str> {
    match word {
        "JPY" => Some("¥"),
        "USD" => Some("$"),
        "EUR" => Some("€"),
        "GBP" => Some("£"),
        _ => None,
    }
}

/// A character that makes a number part of a word or code.
fn glued(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '_' || c == '/'
}

/// Full-width digits, comma, full stop and space as ASCII.
fn ascii_form(c: char) -> char {
    match c {
        '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
        '，' => ',',
        '．' => '.',
        '\u{3000}' | '\u{a0}' | '\t' => ' ',
        c => c,
    }
}

fn window_before(text: &str, at: usize) -> &str {
    let head = text.get(..at).unwrap_or("");
    let start = head
        .char_indices()
        .rev()
        .take(WINDOW)
        .last()
        .map_or(head.len(), |(i, _)| i);
    &head[start..]
}

fn window_after(text: &str, at: usize) -> &str {
    let tail = text.get(at..).unwrap_or("");
    let end = tail
        .char_indices()
        .nth(WINDOW)
        .map_or(tail.len(), |(i, _)| i);
    &tail[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn around(text: &str, code: &str) -> Option<String> {
        let at = text.find(code).unwrap();
        near(text, at..at + code.len())
    }

    #[test]
    fn stated_amounts_in_their_usual_forms() {
        let code = "524Y-NG5BY1-A2ROG";
        for (text, want) in [
            (
                "ギフトカード番号：524Y-NG5BY1-A2ROG\n金額：￥3,000\n",
                "¥3,000",
            ),
            ("ギフト券番号: 524Y-NG5BY1-A2ROG\n金額: 1,500円\n", "¥1,500"),
            (
                "Amazon.com Gift Card $25.00\nClaim code: 524Y-NG5BY1-A2ROG",
                "$25.00",
            ),
            ("US$ 50 gift card. Code 524Y-NG5BY1-A2ROG", "$50"),
            ("Code 524Y-NG5BY1-A2ROG worth 20 EUR", "€20"),
            ("Code 524Y-NG5BY1-A2ROG (JPY 10000)", "¥10000"),
            ("金額：３，０００円 番号 524Y-NG5BY1-A2ROG", "¥3,000"),
            ("£20 card: 524Y-NG5BY1-A2ROG", "£20"),
            // The same amount twice is one amount.
            (
                "￥5,000 が届きました。番号 524Y-NG5BY1-A2ROG 金額 ￥5,000",
                "¥5,000",
            ),
        ] {
            assert_eq!(around(text, code).as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn nothing_unless_exactly_one_amount_is_stated() {
        let code = "524Y-NG5BY1-A2ROG";
        for text in [
            "Claim code: 524Y-NG5BY1-A2ROG",
            // Bare numbers, dates, order numbers.
            "Code 524Y-NG5BY1-A2ROG valid until 2036年11月24日, order 3000",
            // Two different amounts: which one is the card's?
            "Item ¥1,200, shipping ¥300. Code 524Y-NG5BY1-A2ROG",
            // Glued to letters, malformed groups, too large, zero.
            "Code 524Y-NG5BY1-A2ROG ref AB¥300X",
            "Code 524Y-NG5BY1-A2ROG ¥30,00",
            "Code 524Y-NG5BY1-A2ROG ¥123456789",
            "Code 524Y-NG5BY1-A2ROG ¥0",
            "Code 524Y-NG5BY1-A2ROG SUSD 5",
            "Code 524Y-NG5BY1-A2ROG 5 USDX",
        ] {
            assert_eq!(around(text, code), None, "{text}");
        }
    }

    #[test]
    fn only_the_window_around_the_code_counts() {
        let far = format!("¥9,999{}Code 524Y-NG5BY1-A2ROG", " ".repeat(WINDOW + 5));
        assert_eq!(around(&far, "524Y-NG5BY1-A2ROG"), None);
    }
}
