//! CORS: a bucket's rules checked as S3 checks them, and the answer they give a browser's
//! request. s3s does not route `OPTIONS`, so the gateway answers preflights itself, in
//! [`cors_layer`](super::cors_layer), from the bucket's rules, and adds the `Access-Control-*`
//! headers to the answer of any request that has an `Origin` a rule allows.

use s3s::dto::*;
use s3s::{s3_error, S3Result};

/// The most rules one configuration may hold (S3's limit).
pub const MAX_RULES: usize = 100;
/// The methods a rule may allow (S3's list).
const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// Checks `config` as S3 does.
pub fn validate(config: &CORSConfiguration) -> S3Result<()> {
    let rules = &config.cors_rules;
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(s3_error!(
            MalformedXML,
            "a CORS configuration has 1 to {MAX_RULES} rules, not {}",
            rules.len()
        ));
    }
    for rule in rules {
        if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "a CORS rule needs an AllowedMethod and an AllowedOrigin"
            ));
        }
        if let Some(method) = rule
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(s3_error!(
                InvalidRequest,
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            ));
        }
        let patterns = rule
            .allowed_origins
            .iter()
            .chain(rule.allowed_headers.iter().flatten());
        if let Some(bad) = patterns.into_iter().find(|p| p.matches('*').count() > 1) {
            return Err(s3_error!(
                InvalidRequest,
                "{bad:?} has more than one wildcard"
            ));
        }
        if rule.id.as_ref().is_some_and(|id| id.len() > 255) {
            return Err(s3_error!(
                InvalidArgument,
                "a CORS rule ID is at most 255 characters"
            ));
        }
    }
    Ok(())
}

/// Whether `value` matches `pattern`, in which one `*` stands for any characters.
fn matches(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

/// The `Access-Control-*` headers a rule gives a request.
#[derive(Debug, PartialEq, Eq)]
pub struct Allowed {
    pub origin: String,
    pub methods: String,
    /// The headers the preflight asked for (all of them allowed), if it asked for any.
    pub headers: Option<String>,
    pub expose: Option<String>,
    pub max_age: Option<i32>,
}

/// The first rule that allows `origin` to use `method` with `headers` (the preflight's
/// `Access-Control-Request-Headers`, comma-separated), as S3 picks it.
pub fn allow(
    config: &CORSConfiguration,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> Option<Allowed> {
    let asked: Vec<String> = headers
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let rule = config.cors_rules.iter().find(|rule| {
        rule.allowed_origins.iter().any(|o| matches(o, origin))
            && rule.allowed_methods.iter().any(|m| m == method)
            && asked.iter().all(|h| {
                rule.allowed_headers
                    .iter()
                    .flatten()
                    .any(|a| matches(&a.to_ascii_lowercase(), h))
            })
    })?;
    // A rule for any origin answers `*`, as S3 does, unless the request named one.
    let origin = if rule.allowed_origins.iter().any(|o| o == "*") {
        "*".to_string()
    } else {
        origin.to_string()
    };
    let join = |list: &[String]| (!list.is_empty()).then(|| list.join(", "));
    Some(Allowed {
        origin,
        methods: rule.allowed_methods.join(", "),
        headers: join(&asked),
        expose: rule.expose_headers.as_deref().and_then(join),
        max_age: rule.max_age_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(methods: &[&str], origins: &[&str]) -> CORSRule {
        CORSRule {
            allowed_methods: methods.iter().map(|m| m.to_string()).collect(),
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            ..CORSRule::default()
        }
    }

    fn config(rules: Vec<CORSRule>) -> CORSConfiguration {
        CORSConfiguration { cors_rules: rules }
    }

    #[test]
    fn rules_are_checked() {
        assert!(validate(&config(vec![rule(&["GET", "PUT"], &["*.get"])])).is_ok());
        assert!(validate(&config(vec![])).is_err());
        assert!(validate(&config(vec![rule(&["PATCH"], &["*"])])).is_err());
        assert!(validate(&config(vec![rule(&["GET"], &["*a*"])])).is_err());
        assert!(validate(&config(vec![rule(&["GET"], &[])])).is_err());
    }

    #[test]
    fn origins_match_with_one_wildcard() {
        assert!(matches("*suffix", "foo.suffix"));
        assert!(!matches("*suffix", "foo.suffix.get"));
        assert!(matches("start*end", "startend"));
        assert!(matches("start*end", "start12end"));
        assert!(!matches("start*end", "0start12end"));
        assert!(!matches("start*end", "startnd"));
        assert!(matches("prefix*", "prefix"));
        assert!(!matches("prefix*", "bla.prefix"));
        assert!(matches("exact", "exact"));
    }

    #[test]
    fn the_first_matching_rule_answers() {
        let mut put = rule(&["PUT"], &["*.put"]);
        put.expose_headers = Some(vec!["x-amz-meta-a".into()]);
        put.max_age_seconds = Some(30);
        let c = config(vec![rule(&["GET"], &["*suffix"]), put]);
        let got = allow(&c, "foo.suffix", "GET", None).unwrap();
        assert_eq!(
            (got.origin.as_str(), got.methods.as_str()),
            ("foo.suffix", "GET")
        );
        assert_eq!(allow(&c, "foo.suffix", "PUT", None), None);
        let got = allow(&c, "a.put", "PUT", None).unwrap();
        assert_eq!(got.expose.as_deref(), Some("x-amz-meta-a"));
        assert_eq!(got.max_age, Some(30));
        let any = config(vec![rule(&["GET"], &["*"])]);
        assert_eq!(
            allow(&any, "example.origin", "GET", None).unwrap().origin,
            "*"
        );
    }

    #[test]
    fn asked_headers_must_all_be_allowed() {
        let mut r = rule(&["GET"], &["*"]);
        let c = config(vec![r.clone()]);
        assert_eq!(allow(&c, "o", "GET", Some("x-amz-meta-header2")), None);
        r.allowed_headers = Some(vec!["X-Amz-Meta-*".into()]);
        let c = config(vec![r]);
        let got = allow(&c, "o", "GET", Some("x-amz-meta-a, X-Amz-Meta-B")).unwrap();
        assert_eq!(got.headers.as_deref(), Some("x-amz-meta-a, x-amz-meta-b"));
        assert_eq!(allow(&c, "o", "GET", Some("content-type")), None);
    }
}
