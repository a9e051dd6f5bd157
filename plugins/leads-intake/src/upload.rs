//! Reading the one file of a `multipart/form-data` upload (part `document`) with multer. The
//! body is already in memory, so the parser's futures never wait: `block_on` just runs them.

use std::convert::Infallible;

use base64::Engine as _;
use bytes::Bytes;
use lumire_plugin_sdk::Problem;

/// The largest document accepted (decoded), as the engine's object storage.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;
/// The form part holding the file.
pub const PART: &str = "document";
/// Chunks fed to the parser: the body is copied a slice at a time, not whole.
const CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub struct Upload {
    pub filename: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

fn too_large() -> Problem {
    Problem::field(PART, "must be at most 10 MiB")
}

fn malformed(e: multer::Error) -> Problem {
    match e {
        multer::Error::NoMultipart | multer::Error::DecodeContentType(_) => Problem::field(
            "content-type",
            "must be multipart/form-data with a boundary",
        ),
        multer::Error::NoBoundary => Problem::field(
            "content-type",
            "has no boundary (multipart/form-data; boundary=...)",
        ),
        e => Problem::field("body", &format!("is not valid multipart/form-data: {e}")),
    }
}

/// The base name of a client's file name (browsers and tools may send a path), at most 255
/// characters; `document` when none was sent.
fn file_name(raw: Option<&str>) -> String {
    let base = raw
        .and_then(|n| n.rsplit(['/', '\\']).next())
        .map(str::trim)
        .unwrap_or_default();
    let clean: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    if clean.is_empty() || clean == "." || clean == ".." {
        PART.to_string()
    } else {
        clean
    }
}

/// Parses the body and returns the `document` part. Errors are 400s naming `content-type`
/// (not multipart, no boundary), `body` (broken multipart), `document` (missing, twice, empty,
/// too large, bad base64) or an unknown part's name.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Upload, Problem> {
    let boundary = multer::parse_boundary(content_type.unwrap_or_default()).map_err(malformed)?;
    let chunks = body
        .chunks(CHUNK)
        .map(|c| Ok::<Bytes, Infallible>(Bytes::copy_from_slice(c)));
    let mut form = multer::Multipart::new(futures_util::stream::iter(chunks), boundary);
    let body_len = body.len();
    futures_executor::block_on(async move {
        let mut found: Option<Upload> = None;
        while let Some(mut field) = form.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or_default().to_string();
            if name != PART {
                let name = if name.is_empty() { "body" } else { &name };
                return Err(Problem::field(
                    name,
                    "is not a known part (send the file as `document`)",
                ));
            }
            if found.is_some() {
                return Err(Problem::field(PART, "must be sent once"));
            }
            let base64 = field
                .headers()
                .get("content-transfer-encoding")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("base64"));
            // Base64 text is 4/3 of the content plus line breaks.
            let limit = if base64 {
                MAX_BYTES / 3 * 4 + MAX_BYTES / 32
            } else {
                MAX_BYTES
            };
            // One allocation: the part is never larger than the body (nor the limit).
            let mut content = Vec::with_capacity(body_len.min(limit));
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                if content.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                content.extend_from_slice(&chunk);
            }
            if base64 {
                content.retain(|b| !b.is_ascii_whitespace());
                content = base64::engine::general_purpose::STANDARD
                    .decode(&content)
                    .map_err(|_| {
                        Problem::field(
                            PART,
                            "is not valid base64 (Content-Transfer-Encoding: base64)",
                        )
                    })?;
                if content.len() > MAX_BYTES {
                    return Err(too_large());
                }
            }
            if content.is_empty() {
                return Err(Problem::field(PART, "is an empty file"));
            }
            found = Some(Upload {
                filename: file_name(field.file_name()),
                content_type: field
                    .content_type()
                    .map(|m| m.essence_str().to_string())
                    .unwrap_or_else(|| "application/octet-stream".into()),
                content,
            });
        }
        found.ok_or_else(|| Problem::field(PART, "is required (a file part named `document`)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=XyZ";

    fn body(parts: &[&str]) -> Vec<u8> {
        let mut b = String::new();
        for p in parts {
            b.push_str("--XyZ\r\n");
            b.push_str(p);
            b.push_str("\r\n");
        }
        b.push_str("--XyZ--\r\n");
        b.into_bytes()
    }

    fn field(p: &Problem) -> &str {
        &p.errors[0].0
    }

    #[test]
    fn reads_the_document_part() {
        let b = body(&[
            "Content-Disposition: form-data; name=\"document\"; filename=\"C:\\\\fake\\\\a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4 hello",
        ]);
        let u = parse(Some(CT), &b).unwrap();
        assert_eq!(u.filename, "a.pdf");
        assert_eq!(u.content_type, "application/pdf");
        assert_eq!(u.content, b"%PDF-1.4 hello");
    }

    #[test]
    fn decodes_base64_parts() {
        let b = body(&[
            "Content-Disposition: form-data; name=\"document\"; filename=\"x.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=",
        ]);
        let u = parse(Some(CT), &b).unwrap();
        assert_eq!(u.content, b"hello");
        assert_eq!(u.content_type, "application/octet-stream");
    }

    #[test]
    fn errors_name_the_field() {
        let ok =
            body(&["Content-Disposition: form-data; name=\"document\"; filename=\"a\"\r\n\r\nx"]);
        assert_eq!(field(&parse(None, &ok).unwrap_err()), "content-type");
        assert_eq!(
            field(&parse(Some("multipart/form-data"), &ok).unwrap_err()),
            "content-type"
        );
        assert_eq!(
            field(&parse(Some("application/json"), &ok).unwrap_err()),
            "content-type"
        );
        let empty =
            body(&["Content-Disposition: form-data; name=\"document\"; filename=\"a\"\r\n\r\n"]);
        assert_eq!(field(&parse(Some(CT), &empty).unwrap_err()), "document");
        let none = body(&[]);
        assert_eq!(field(&parse(Some(CT), &none).unwrap_err()), "document");
        let other =
            body(&["Content-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nx"]);
        assert_eq!(field(&parse(Some(CT), &other).unwrap_err()), "file");
        let twice = body(&[
            "Content-Disposition: form-data; name=\"document\"; filename=\"a\"\r\n\r\nx",
            "Content-Disposition: form-data; name=\"document\"; filename=\"b\"\r\n\r\ny",
        ]);
        assert_eq!(field(&parse(Some(CT), &twice).unwrap_err()), "document");
        assert_eq!(field(&parse(Some(CT), b"garbage").unwrap_err()), "body");
        let big = vec![b'a'; MAX_BYTES + 1];
        let mut b =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"document\"; filename=\"a\"\r\n\r\n"
                .to_vec();
        b.extend_from_slice(&big);
        b.extend_from_slice(b"\r\n--XyZ--\r\n");
        assert_eq!(field(&parse(Some(CT), &b).unwrap_err()), "document");
    }
}
