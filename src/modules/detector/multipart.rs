//! A small `multipart/form-data` reader (RFC 7578 over RFC 2046 §5.1) for the Custom Vision
//! route, which takes its picture from the part named `imageData`. Pure; borrows the body.
//!
//! Accepted: the boundary parameter quoted or not, a preamble and epilogue, transport
//! padding after a delimiter, CRLF or bare LF line ends, header names in any case.
//! Refused with a message: no boundary, no first delimiter, a part without its blank line
//! after the headers, a body that ends before the closing delimiter.

/// One part of a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// `name` of its `Content-Disposition: form-data`, if any.
    pub name: Option<String>,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("multipart/form-data without a boundary parameter")]
    NoBoundary,
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
    #[error("no part named {0:?} in the form")]
    Missing(String),
}

/// The `boundary` parameter of a `multipart/*` Content-Type.
pub fn boundary(content_type: &str) -> Option<String> {
    param(content_type, "boundary").filter(|b| !b.is_empty() && b.len() <= 200)
}

/// A parameter of a header value such as `form-data; name="imageData"` (names match in
/// any case; values may be quoted, with `\"` escapes).
pub fn param(header: &str, wanted: &str) -> Option<String> {
    let mut rest = header.split_once(';')?.1;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return None;
        }
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(e);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &q[end.min(q.len())..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        if key.trim().eq_ignore_ascii_case(wanted) {
            return Some(value);
        }
        rest = next;
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() || from > hay.len() - needle.len() {
        return None;
    }
    hay[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// Skips the end of a line (CRLF or LF) at `at`, or `None` if there is none.
fn eol(body: &[u8], at: usize) -> Option<usize> {
    match body.get(at..) {
        Some([b'\r', b'\n', ..]) => Some(at + 2),
        Some([b'\n', ..]) => Some(at + 1),
        _ => None,
    }
}

/// Every part of the form, in order.
pub fn parts<'a>(content_type: &str, body: &'a [u8]) -> Result<Vec<Part<'a>>, MultipartError> {
    let boundary = boundary(content_type).ok_or(MultipartError::NoBoundary)?;
    let delimiter = format!("--{boundary}").into_bytes();
    // The first delimiter starts the body or a line.
    let mut at = if body.starts_with(&delimiter) {
        0
    } else {
        find(body, &[b"\n".as_slice(), &delimiter].concat(), 0).ok_or(MultipartError::Malformed("no opening boundary"))? + 1
    };
    let mut parts = Vec::new();
    loop {
        at += delimiter.len();
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        while matches!(body.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        at = eol(body, at).ok_or(MultipartError::Malformed("boundary not followed by a line end"))?;
        // Headers, up to an empty line.
        let (mut name, mut filename, mut ctype) = (None, None, None);
        loop {
            if let Some(next) = eol(body, at) {
                at = next;
                break;
            }
            let end = find(body, b"\n", at).ok_or(MultipartError::Malformed("part headers not ended by an empty line"))?;
            let line = String::from_utf8_lossy(&body[at..end]);
            let line = line.trim_end_matches('\r');
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("content-disposition") {
                    name = param(v, "name");
                    filename = param(v, "filename");
                } else if k.eq_ignore_ascii_case("content-type") {
                    ctype = Some(v.to_owned());
                }
            }
            at = end + 1;
        }
        // Content, up to the line end before the next delimiter.
        let next = find(body, &[b"\n".as_slice(), &delimiter].concat(), at).ok_or(MultipartError::Malformed("no closing boundary"))?;
        let end = if next > at && body[next - 1] == b'\r' { next - 1 } else { next };
        parts.push(Part { name, filename, content_type: ctype, data: &body[at..end.max(at)] });
        at = next + 1;
    }
}

/// The part named `name` (exact, as Flask's `request.files[...]` matches).
pub fn part<'a>(content_type: &str, body: &'a [u8], name: &str) -> Result<Part<'a>, MultipartError> {
    parts(content_type, body)?.into_iter().find(|p| p.name.as_deref() == Some(name)).ok_or_else(|| MultipartError::Missing(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";

    fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut b = b"preamble to ignore\r\n".to_vec();
        for (name, file, data) in parts {
            b.extend_from_slice(b"------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n");
            match file {
                Some(f) => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/jpeg\r\n\r\n")
                        .as_bytes(),
                ),
                None => b.extend_from_slice(format!("content-disposition: form-data; name={name}\r\n\r\n").as_bytes()),
            }
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\nepilogue");
        b
    }

    #[test]
    fn finds_the_named_part_with_binary_content() {
        // Binary data holding CRLFs and dashes that are not a delimiter.
        let jpeg: &[u8] = b"\xff\xd8\xff\xe0\r\n--not-the-boundary\r\n\x00\x01\xff\xd9";
        let body = form(&[("other", None, b"x"), ("imageData", Some("frame.jpg"), jpeg), ("empty", None, b"")]);
        let all = parts(CT, &body).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], Part { name: Some("other".into()), filename: None, content_type: None, data: b"x" });
        assert_eq!(all[2].data, b"");
        let p = part(CT, &body, "imageData").unwrap();
        assert_eq!(p.data, jpeg);
        assert_eq!(p.filename.as_deref(), Some("frame.jpg"));
        assert_eq!(p.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(part(CT, &body, "imagedata").unwrap_err(), MultipartError::Missing("imagedata".into()));
    }

    #[test]
    fn quoted_boundary_and_bare_line_feeds() {
        let body = b"--a b\nContent-Disposition: form-data; name=\"imageData\"\n\nDATA\n--a b--\n";
        let p = part("multipart/form-data; boundary=\"a b\"", body, "imageData").unwrap();
        assert_eq!(p.data, b"DATA");
        // Transport padding after a delimiter.
        let body = b"--xyz  \r\nContent-Disposition: form-data; name=imageData\r\n\r\n123\r\n--xyz--";
        assert_eq!(part("multipart/form-data;boundary=xyz", body, "imageData").unwrap().data, b"123");
    }

    #[test]
    fn malformed_forms_are_errors() {
        assert_eq!(parts("multipart/form-data", b"").unwrap_err(), MultipartError::NoBoundary);
        assert_eq!(parts("multipart/form-data; boundary=", b"").unwrap_err(), MultipartError::NoBoundary);
        assert!(matches!(parts("multipart/form-data; boundary=q", b"nothing here"), Err(MultipartError::Malformed(_))));
        let unterminated = b"--q\r\nContent-Disposition: form-data; name=imageData\r\n\r\nDATA";
        assert!(matches!(parts("multipart/form-data; boundary=q", unterminated), Err(MultipartError::Malformed(_))));
        let no_blank_line = b"--q\r\nContent-Disposition: form-data; name=imageData";
        assert!(matches!(parts("multipart/form-data; boundary=q", no_blank_line), Err(MultipartError::Malformed(_))));
        // An empty form is fine and has no parts.
        assert_eq!(parts("multipart/form-data; boundary=q", b"--q--\r\n").unwrap(), vec![]);
    }

    #[test]
    fn header_parameters() {
        assert_eq!(param("form-data; name=\"imageData\"; filename=\"a;b.jpg\"", "filename").as_deref(), Some("a;b.jpg"));
        assert_eq!(param("form-data; NAME=imageData", "name").as_deref(), Some("imageData"));
        assert_eq!(param("form-data; name=\"say \\\"hi\\\"\"", "name").as_deref(), Some("say \"hi\""));
        assert_eq!(param("form-data", "name"), None);
        assert_eq!(boundary("multipart/form-data; charset=utf-8; boundary=abc").as_deref(), Some("abc"));
    }
}
