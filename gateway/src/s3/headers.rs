//! The standard headers S3 keeps with an object and sends back on GET and HEAD:
//! Cache-Control, Content-Disposition, Content-Encoding, Content-Language and Expires, kept as
//! they were sent (in the object's metadata, beside Content-Type), and the `response-*` query
//! parameters that override them (and Content-Type) on one GET.

use std::collections::HashMap;

use s3s::dto::{GetObjectInput, GetObjectOutput, Timestamp, TimestampFormat};

use bigfs_proto::pb::ObjectMeta;

/// The content coding a client's SDK adds for its own streaming upload (SigV4 chunks): it
/// describes the request, not the object, so it is not kept.
const AWS_CHUNKED: &str = "aws-chunked";

/// The standard headers of a PUT, a CreateMultipartUpload or a CopyObject that replaces its
/// metadata.
#[derive(Clone, Debug, Default)]
pub struct StandardHeaders {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<Timestamp>,
}

/// The [`StandardHeaders`] of a request (PutObject, CreateMultipartUpload, CopyObject: their
/// fields have the same names), moved out of it.
macro_rules! standard_headers {
    ($input:expr) => {
        $crate::s3::headers::StandardHeaders {
            cache_control: $input.cache_control,
            content_disposition: $input.content_disposition,
            content_encoding: $input.content_encoding,
            content_language: $input.content_language,
            expires: $input.expires,
        }
    };
}
pub(crate) use standard_headers;

impl StandardHeaders {
    /// What a new object keeps besides its Content-Type and `x-amz-meta-*`: these headers and
    /// `tags`.
    pub fn with_tags(self, tags: HashMap<String, String>) -> ObjectMeta {
        let mut meta = ObjectMeta {
            tags,
            ..ObjectMeta::default()
        };
        self.keep(&mut meta);
        meta
    }

    /// Keeps them in `meta` (what is not given is left empty).
    pub fn keep(self, meta: &mut ObjectMeta) {
        meta.cache_control = self.cache_control.unwrap_or_default();
        meta.content_disposition = self.content_disposition.unwrap_or_default();
        meta.content_encoding = self
            .content_encoding
            .map(|coding| without_aws_chunked(&coding))
            .unwrap_or_default();
        meta.content_language = self.content_language.unwrap_or_default();
        meta.expires = self.expires.map(|t| http_date(&t)).unwrap_or_default();
    }
}

/// `coding` without the `aws-chunked` entries of its list.
fn without_aws_chunked(coding: &str) -> String {
    coding
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case(AWS_CHUNKED))
        .collect::<Vec<_>>()
        .join(", ")
}

fn http_date(timestamp: &Timestamp) -> String {
    let mut out = Vec::new();
    match timestamp.format(TimestampFormat::HttpDate, &mut out) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// A kept header, `None` when it was not given.
pub fn kept(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

/// The kept Expires, `None` when none was given (or it no longer parses).
pub fn expires(meta: &ObjectMeta) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, &meta.expires).ok()
}

/// Sets the kept standard headers of `meta` on a GET's or HEAD's output (whose fields have the
/// same names).
macro_rules! send_headers {
    ($output:expr, $meta:expr) => {{
        let meta: &bigfs_proto::pb::ObjectMeta = $meta;
        $output.cache_control = $crate::s3::headers::kept(&meta.cache_control);
        $output.content_disposition = $crate::s3::headers::kept(&meta.content_disposition);
        $output.content_encoding = $crate::s3::headers::kept(&meta.content_encoding);
        $output.content_language = $crate::s3::headers::kept(&meta.content_language);
        $output.expires = $crate::s3::headers::expires(meta);
    }};
}
pub(crate) use send_headers;

/// A GET's `response-*` query parameters: headers of this one response, instead of those
/// kept with the object.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    content_type: Option<String>,
    expires: Option<Timestamp>,
}

impl Overrides {
    pub fn of(input: &GetObjectInput) -> Self {
        Self {
            cache_control: input.response_cache_control.clone(),
            content_disposition: input.response_content_disposition.clone(),
            content_encoding: input.response_content_encoding.clone(),
            content_language: input.response_content_language.clone(),
            content_type: input.response_content_type.clone(),
            expires: input.response_expires.clone(),
        }
    }

    pub fn apply(self, output: &mut GetObjectOutput) {
        let headers = [
            (self.cache_control, &mut output.cache_control),
            (self.content_disposition, &mut output.content_disposition),
            (self.content_encoding, &mut output.content_encoding),
            (self.content_language, &mut output.content_language),
            (self.content_type, &mut output.content_type),
        ];
        for (asked, header) in headers {
            if asked.is_some() {
                *header = asked;
            }
        }
        if self.expires.is_some() {
            output.expires = self.expires;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_describes_the_upload_not_the_object() {
        assert_eq!(without_aws_chunked("gzip"), "gzip");
        assert_eq!(without_aws_chunked("deflate, gzip"), "deflate, gzip");
        assert_eq!(without_aws_chunked("gzip, aws-chunked"), "gzip");
        assert_eq!(without_aws_chunked("aws-chunked,gzip"), "gzip");
        assert_eq!(without_aws_chunked("aws-chunked, aws-chunked"), "");
    }

    #[test]
    fn headers_are_kept_as_sent_and_expires_round_trips() {
        let expires =
            Timestamp::parse(TimestampFormat::HttpDate, "Wed, 21 Oct 2037 07:28:00 GMT").unwrap();
        let mut meta = ObjectMeta::default();
        StandardHeaders {
            cache_control: Some("public, max-age=14400".into()),
            content_encoding: Some("aws-chunked".into()),
            expires: Some(expires.clone()),
            ..StandardHeaders::default()
        }
        .keep(&mut meta);
        assert_eq!(kept(&meta.cache_control).unwrap(), "public, max-age=14400");
        assert_eq!(kept(&meta.content_encoding), None);
        assert_eq!(kept(&meta.content_language), None);
        assert_eq!(super::expires(&meta), Some(expires));
        let mut output = GetObjectOutput::default();
        send_headers!(output, &meta);
        let overrides = Overrides {
            cache_control: Some("no-cache".into()),
            ..Overrides::default()
        };
        overrides.apply(&mut output);
        assert_eq!(output.cache_control.as_deref(), Some("no-cache"));
        assert!(output.expires.is_some());
    }
}
