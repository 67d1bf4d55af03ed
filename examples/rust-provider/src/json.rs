//! A minimal JSON scanner over borrowed bytes: enough to find members of an object, decode string
//! values (every JSON escape, surrogate pairs included) and read token counts. It never builds a
//! tree and never copies the document; positions are byte offsets into the slice it was given.
//! Member names are compared byte for byte (the names this plugin looks for need no escaping).

use std::ops::Range;

/// Deepest nesting the scanner follows before it calls a document malformed.
const MAX_DEPTH: usize = 64;

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

pub fn skip_space(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    i
}

/// `b[..]` without leading and trailing JSON white space.
pub fn trim(b: &[u8]) -> &[u8] {
    let start = skip_space(b, 0);
    let mut end = b.len();
    while end > start && is_space(b[end - 1]) {
        end -= 1;
    }
    &b[start..end]
}

/// `i` is at an opening quote: the position after the closing quote.
pub fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut p = i + 1;
    while p < b.len() {
        match b[p] {
            b'"' => return Some(p + 1),
            b'\\' => p += 2,
            c if c < 0x20 => return None,
            _ => p += 1,
        }
    }
    None
}

fn is_literal_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.')
}

/// The position after the value that starts at `i` (after optional white space).
pub fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    skip_value_at_depth(b, i, 0)
}

fn skip_value_at_depth(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    let mut p = skip_space(b, i);
    match *b.get(p)? {
        b'"' => skip_string(b, p),
        open @ (b'{' | b'[') => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let close = if open == b'{' { b'}' } else { b']' };
            p = skip_space(b, p + 1);
            if b.get(p) == Some(&close) {
                return Some(p + 1);
            }
            loop {
                if open == b'{' {
                    p = skip_string(b, skip_space(b, p))?;
                    p = skip_space(b, p);
                    if b.get(p) != Some(&b':') {
                        return None;
                    }
                    p += 1;
                }
                p = skip_space(b, skip_value_at_depth(b, p, depth + 1)?);
                match *b.get(p)? {
                    c if c == close => return Some(p + 1),
                    b',' => p += 1,
                    _ => return None,
                }
            }
        }
        _ => {
            // A number, true, false or null.
            let start = p;
            while p < b.len() && is_literal_byte(b[p]) {
                p += 1;
            }
            (p > start).then_some(p)
        }
    }
}

/// True when `b` is exactly one JSON object (white space around it allowed).
pub fn is_object(b: &[u8]) -> bool {
    let start = skip_space(b, 0);
    b.get(start) == Some(&b'{') && matches!(skip_value(b, start), Some(end) if skip_space(b, end) == b.len())
}

/// One member of an object: the raw name (between the quotes, escapes not decoded) and where its
/// value lies in the document.
pub struct Member<'a> {
    pub name: &'a [u8],
    pub value: Range<usize>,
}

/// The members of the object at `object` (after optional white space), in document order. The
/// iteration stops at the end of the object or at the first malformed byte.
pub struct Members<'a> {
    b: &'a [u8],
    p: usize,
    done: bool,
}

pub fn members(b: &[u8], object: usize) -> Members<'_> {
    let p = skip_space(b, object);
    let mut done = b.get(p) != Some(&b'{');
    let p = skip_space(b, p + 1);
    if !done && b.get(p) == Some(&b'}') {
        done = true;
    }
    Members { b, p, done }
}

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        if self.done {
            return None;
        }
        let member = self.step();
        if member.is_none() {
            self.done = true;
        }
        member
    }
}

impl<'a> Members<'a> {
    fn step(&mut self) -> Option<Member<'a>> {
        let b = self.b;
        let key_start = skip_space(b, self.p);
        let key_end = skip_string(b, key_start)?;
        let colon = skip_space(b, key_end);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_space(b, colon + 1);
        let value_end = skip_value(b, value_start)?;
        let after = skip_space(b, value_end);
        match b.get(after) {
            Some(b',') => self.p = after + 1,
            Some(b'}') => self.done = true,
            _ => return None,
        }
        Some(Member { name: &b[key_start + 1..key_end - 1], value: value_start..value_end })
    }
}

/// Where the value of member `name` of the object at `object` lies.
pub fn find(b: &[u8], object: usize, name: &str) -> Option<Range<usize>> {
    members(b, object).find(|m| m.name == name.as_bytes()).map(|m| m.value)
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok().filter(|_| digits.iter().all(u8::is_ascii_hexdigit))
}

/// Decodes the JSON string whose opening quote is at `i`. Lone surrogates become U+FFFD, invalid
/// UTF-8 in the document becomes U+FFFD. At most about `limit` bytes are decoded; a longer string
/// is cut at a character boundary at or below `limit` and reported as truncated.
pub fn decode_string(b: &[u8], i: usize, limit: usize) -> Option<(String, bool)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    let mut p = i + 1;
    let mut truncated = false;
    loop {
        if out.len() > limit.saturating_add(4) {
            truncated = true;
            break;
        }
        let c = *b.get(p)?;
        match c {
            b'"' => break,
            c if c < 0x20 => return None,
            b'\\' => {
                let escape = *b.get(p + 1)?;
                p += 2;
                let ch = match escape {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let high = hex4(b, p)?;
                        p += 4;
                        let code = if (0xD800..0xDC00).contains(&high) {
                            match (b.get(p), b.get(p + 1), hex4(b, p + 2)) {
                                (Some(b'\\'), Some(b'u'), Some(low)) if (0xDC00..0xE000).contains(&low) => {
                                    p += 6;
                                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                                }
                                _ => 0xFFFD,
                            }
                        } else {
                            high
                        };
                        char::from_u32(code).unwrap_or('\u{FFFD}')
                    }
                    _ => return None,
                };
                let mut buffer = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buffer).as_bytes());
            }
            _ => {
                out.push(c);
                p += 1;
            }
        }
    }
    let mut text = String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    if text.len() > limit {
        truncated = true;
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Some((text, truncated))
}

/// A non-negative integer value; 0 for anything else (null, a fraction, an overflow).
pub fn read_count(b: &[u8], value: Range<usize>) -> u64 {
    let digits = &b[value];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    digits.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0'))).unwrap_or(0)
}

/// `text` as a JSON string literal, quotes included.
pub fn quote(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.push(b'"');
    for &c in text {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            c if c < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_members_and_skips_nested_values() {
        let doc = br#" {"a": [1, {"model": "x"}], "b": {"c": null}, "model" : "gpt\u002d4o", "n": 12} "#;
        let model = find(doc, 0, "model").unwrap();
        assert_eq!(decode_string(doc, model.start, 100).unwrap().0, "gpt-4o");
        assert_eq!(read_count(doc, find(doc, 0, "n").unwrap()), 12);
        assert!(find(doc, 0, "c").is_none(), "only top-level members");
        assert!(is_object(doc));
        assert!(!is_object(br#"{"a":1} x"#));
        assert!(!is_object(br#"{"a":}"#));
        assert!(!is_object(b"[1]"));
        assert!(members(b"{}", 0).next().is_none());
    }

    #[test]
    fn decodes_escapes_and_surrogates() {
        let doc = br#""a\"b\\c\/\n\u00e9\ud83d\ude00\ud800x""#;
        let (text, truncated) = decode_string(doc, 0, 100).unwrap();
        assert_eq!(text, "a\"b\\c/\n\u{e9}\u{1F600}\u{FFFD}x");
        assert!(!truncated);
        assert!(decode_string(br#""bad \q""#, 0, 100).is_none());
        assert!(decode_string(b"\"unterminated", 0, 100).is_none());
    }

    #[test]
    fn truncates_at_a_character_boundary() {
        let doc = "\"ééééé\"".as_bytes();
        let (text, truncated) = decode_string(doc, 0, 5).unwrap();
        assert_eq!(text, "éé");
        assert!(truncated);
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_stack_overflow() {
        let mut doc = vec![b'['; 100_000];
        doc.extend(vec![b']'; 100_000]);
        assert!(skip_value(&doc, 0).is_none());
    }

    #[test]
    fn counts() {
        let doc = b"18446744073709551615 18446744073709551616 -1 1.5 null";
        assert_eq!(read_count(doc, 0..20), u64::MAX);
        assert_eq!(read_count(doc, 21..41), 0);
        assert_eq!(read_count(doc, 42..44), 0);
        assert_eq!(read_count(doc, 45..48), 0);
        assert_eq!(read_count(doc, 49..53), 0);
    }

    #[test]
    fn quotes() {
        assert_eq!(quote(b"a\"b\\\n"), br#""a\"b\\\u000a""#.to_vec());
    }
}
