//! Lifecycle rules: a bucket's configuration checked as S3 checks it, and the rule that decides
//! whether an object or a multipart upload has expired.
//!
//! What is honoured: `Expiration` by `Days` or `Date` and `AbortIncompleteMultipartUpload`, for
//! the objects a `Prefix`, tag and object-size filter select (the gateway's collector applies them,
//! see [`Gateway::collect_expired`](super::Gateway::collect_expired)).
//! `ExpiredObjectDeleteMarker` and `NoncurrentVersionExpiration` are accepted because they are
//! honoured by construction: BigFS keeps one version of each object, so there is never a
//! noncurrent version or a delete marker for them to remove. Transitions (to other storage
//! classes) are not honoured: 501, after the configuration was checked, so that a malformed
//! one is still a 400.

use std::collections::HashSet;

use s3s::dto::*;
use s3s::{s3_error, S3Result};

use super::tagging::Tags;

/// The most rules one configuration may hold (S3's limit).
pub const MAX_RULES: usize = 1000;
/// The longest rule ID (S3's limit).
pub const MAX_ID_LEN: usize = 255;
/// A day, in milliseconds: the unit of `Days` and `DaysAfterInitiation`.
pub const DAY_MS: u64 = 86_400_000;

/// Checks `config` as S3 does, then refuses what the gateway cannot honour.
pub fn validate(config: &BucketLifecycleConfiguration) -> S3Result<()> {
    let rules = &config.rules;
    if rules.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "a lifecycle configuration needs a rule"
        ));
    }
    if rules.len() > MAX_RULES {
        return Err(s3_error!(
            MalformedXML,
            "{} lifecycle rules; at most {MAX_RULES}",
            rules.len()
        ));
    }
    let mut ids = HashSet::new();
    for rule in rules {
        check_rule(rule)?;
        if let Some(id) = &rule.id {
            if !ids.insert(id.as_str()) {
                return Err(s3_error!(
                    InvalidArgument,
                    "two lifecycle rules have the ID {id:?}"
                ));
            }
        }
    }
    rules.iter().try_for_each(check_supported)
}

/// Gives each rule without an ID one, as S3 does: a random one, unlike any other.
pub fn name_rules(config: &mut BucketLifecycleConfiguration) {
    let mut taken: HashSet<String> = config.rules.iter().filter_map(|r| r.id.clone()).collect();
    for rule in config.rules.iter_mut().filter(|r| r.id.is_none()) {
        let id = loop {
            let id = format!("{:016x}", rand::random::<u64>());
            if taken.insert(id.clone()) {
                break id;
            }
        };
        rule.id = Some(id);
    }
}

fn check_rule(rule: &LifecycleRule) -> S3Result<()> {
    if let Some(id) = &rule.id {
        if id.len() > MAX_ID_LEN {
            return Err(s3_error!(
                InvalidArgument,
                "a lifecycle rule ID is at most {MAX_ID_LEN} characters"
            ));
        }
    }
    let status = rule.status.as_str();
    if status != ExpirationStatus::ENABLED && status != ExpirationStatus::DISABLED {
        return Err(s3_error!(
            MalformedXML,
            "a lifecycle rule's Status is Enabled or Disabled, not {status:?}"
        ));
    }
    match (&rule.filter, &rule.prefix) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(
                MalformedXML,
                "a lifecycle rule has a Filter or a Prefix, not both"
            ))
        }
        (None, None) => {
            return Err(s3_error!(
                MalformedXML,
                "a lifecycle rule needs a Filter or a Prefix"
            ))
        }
        (Some(filter), None) => check_filter(filter)?,
        (None, Some(_)) => {}
    }
    let has_action = rule.expiration.is_some()
        || rule.abort_incomplete_multipart_upload.is_some()
        || rule.noncurrent_version_expiration.is_some()
        || rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule
            .noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty());
    if !has_action {
        return Err(s3_error!(
            InvalidRequest,
            "a lifecycle rule needs at least one action"
        ));
    }
    if let Some(expiration) = &rule.expiration {
        check_expiration(expiration)?;
    }
    if let Some(abort) = &rule.abort_incomplete_multipart_upload {
        if abort.days_after_initiation.is_none_or(|d| d <= 0) {
            return Err(s3_error!(
                InvalidArgument,
                "DaysAfterInitiation must be a positive integer"
            ));
        }
        if !rule_tags(rule).is_empty() {
            return Err(s3_error!(
                InvalidRequest,
                "AbortIncompleteMultipartUpload cannot be used with a tag filter"
            ));
        }
    }
    if let Some(noncurrent) = &rule.noncurrent_version_expiration {
        if noncurrent.noncurrent_days.is_none_or(|d| d <= 0) {
            return Err(s3_error!(
                InvalidArgument,
                "NoncurrentDays must be a positive integer"
            ));
        }
    }
    for transition in rule.transitions.iter().flatten() {
        if let Some(date) = &transition.date {
            check_midnight(date)?;
        }
        if transition.days.is_some_and(|d| d < 0) {
            return Err(s3_error!(
                InvalidArgument,
                "a transition's Days must not be negative"
            ));
        }
    }
    Ok(())
}

/// An `And` stands alone; a `Prefix` with a `Tag` beside it (which S3 refuses, and RGW and
/// s3-tests use) must both match, as they would inside an `And`.
fn check_filter(filter: &LifecycleRuleFilter) -> S3Result<()> {
    if filter.and.is_some() && (filter.prefix.is_some() || filter.tag.is_some()) {
        return Err(s3_error!(
            MalformedXML,
            "a lifecycle Filter's And holds its Prefix and Tags"
        ));
    }
    Ok(())
}

fn check_expiration(expiration: &LifecycleExpiration) -> S3Result<()> {
    let given = [
        expiration.days.is_some(),
        expiration.date.is_some(),
        expiration.expired_object_delete_marker.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() != 1 {
        return Err(s3_error!(
            MalformedXML,
            "an Expiration has one of Days, Date or ExpiredObjectDeleteMarker"
        ));
    }
    if expiration.days.is_some_and(|d| d <= 0) {
        return Err(s3_error!(
            InvalidArgument,
            "an Expiration's Days must be a positive integer"
        ));
    }
    if let Some(date) = &expiration.date {
        check_midnight(date)?;
    }
    Ok(())
}

/// S3 takes only dates at midnight UTC.
fn check_midnight(date: &Timestamp) -> S3Result<()> {
    let at = time::OffsetDateTime::from(date.clone());
    if at.offset() != time::UtcOffset::UTC || at.time() != time::Time::MIDNIGHT {
        return Err(s3_error!(
            InvalidArgument,
            "a lifecycle Date must be at midnight UTC"
        ));
    }
    Ok(())
}

/// The tags a rule's filter asks an object to have.
fn rule_tags(rule: &LifecycleRule) -> Vec<&Tag> {
    let Some(filter) = &rule.filter else {
        return Vec::new();
    };
    let and = filter.and.as_ref().and_then(|a| a.tags.as_ref());
    filter.tag.iter().chain(and.into_iter().flatten()).collect()
}

/// Refuses the parts of a valid rule that BigFS cannot honour.
fn check_supported(rule: &LifecycleRule) -> S3Result<()> {
    let transitions = rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule
            .noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty());
    if transitions {
        return Err(s3_error!(
            NotImplemented,
            "lifecycle transitions are not supported: BigFS has one storage class"
        ));
    }
    Ok(())
}

/// What a rule needs to know of an object (or of a multipart upload: its key, no size).
#[derive(Clone, Copy)]
pub struct Candidate<'a> {
    pub key: &'a str,
    pub size: Option<u64>,
    /// When it was written (an upload: initiated), in milliseconds since the epoch.
    pub since_ms: u64,
    /// Its tags, where they were read: a rule with a tag filter selects none without them.
    pub tags: Option<&'a Tags>,
}

/// The filter's prefix and size bounds, however the rule spells them.
fn selects(rule: &LifecycleRule, candidate: &Candidate) -> bool {
    let (prefix, above, below) = match (&rule.filter, &rule.prefix) {
        (Some(f), _) => match &f.and {
            Some(a) => (
                a.prefix.as_deref(),
                a.object_size_greater_than,
                a.object_size_less_than,
            ),
            None => (
                f.prefix.as_deref(),
                f.object_size_greater_than,
                f.object_size_less_than,
            ),
        },
        (None, prefix) => (prefix.as_deref(), None, None),
    };
    let size_ok = match candidate.size {
        Some(size) => {
            above.is_none_or(|a| size as i128 > a as i128)
                && below.is_none_or(|b| (size as i128) < b as i128)
        }
        None => true,
    };
    let tags_ok = rule_tags(rule).iter().all(|tag| {
        candidate.tags.is_some_and(|tags| {
            tags.get(tag.key.as_deref().unwrap_or_default())
                .map(String::as_str)
                == Some(tag.value.as_deref().unwrap_or_default())
        })
    });
    candidate.key.starts_with(prefix.unwrap_or_default()) && size_ok && tags_ok
}

/// Whether an enabled rule expires objects by their tags (which a listing does not show).
pub fn needs_tags(config: &BucketLifecycleConfiguration) -> bool {
    config
        .rules
        .iter()
        .any(|r| enabled(r) && r.expiration.is_some() && !rule_tags(r).is_empty())
}

/// When `days` days from `since_ms` have passed: for real days rounded up to the next
/// midnight UTC, as S3 does; a test's short day (`--s3-lifecycle-day`) is exact, as RGW's
/// debug interval is.
fn after_days(since_ms: u64, days: i32, day_ms: u64) -> u64 {
    let at = since_ms.saturating_add(u64::try_from(days).unwrap_or(0).saturating_mul(day_ms));
    if day_ms == DAY_MS {
        at.div_ceil(DAY_MS).saturating_mul(DAY_MS)
    } else {
        at
    }
}

fn enabled(rule: &LifecycleRule) -> bool {
    rule.status.as_str() == ExpirationStatus::ENABLED
}

/// Whether an enabled rule's `Expiration` has come for the object.
pub fn object_expired(
    config: &BucketLifecycleConfiguration,
    object: &Candidate,
    now_ms: u64,
    day_ms: u64,
) -> bool {
    config.rules.iter().filter(|r| enabled(r)).any(|rule| {
        let Some(expiration) = &rule.expiration else {
            return false;
        };
        let due = match (expiration.days, &expiration.date) {
            (Some(days), _) => after_days(object.since_ms, days, day_ms),
            (None, Some(date)) => millis(date),
            (None, None) => return false,
        };
        now_ms >= due && selects(rule, object)
    })
}

/// Whether an enabled rule's `AbortIncompleteMultipartUpload` has come for the upload.
pub fn upload_expired(
    config: &BucketLifecycleConfiguration,
    upload: &Candidate,
    now_ms: u64,
    day_ms: u64,
) -> bool {
    config.rules.iter().filter(|r| enabled(r)).any(|rule| {
        rule.abort_incomplete_multipart_upload
            .as_ref()
            .and_then(|a| a.days_after_initiation)
            .is_some_and(|days| {
                now_ms >= after_days(upload.since_ms, days, day_ms) && selects(rule, upload)
            })
    })
}

/// Whether any enabled rule can expire something: buckets without one are not walked.
pub fn acts(config: &BucketLifecycleConfiguration) -> bool {
    config.rules.iter().filter(|r| enabled(r)).any(|r| {
        r.expiration
            .as_ref()
            .is_some_and(|e| e.days.is_some() || e.date.is_some())
            || r.abort_incomplete_multipart_upload.is_some()
    })
}

fn millis(date: &Timestamp) -> u64 {
    let at = time::OffsetDateTime::from(date.clone());
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, days: i32, prefix: &str) -> LifecycleRule {
        LifecycleRule {
            id: Some(id.into()),
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            prefix: Some(prefix.into()),
            expiration: Some(LifecycleExpiration {
                days: Some(days),
                ..LifecycleExpiration::default()
            }),
            abort_incomplete_multipart_upload: None,
            filter: None,
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            transitions: None,
        }
    }

    fn config(rules: Vec<LifecycleRule>) -> BucketLifecycleConfiguration {
        BucketLifecycleConfiguration { rules }
    }

    fn code(config: &BucketLifecycleConfiguration) -> Option<String> {
        validate(config)
            .err()
            .map(|e| e.code().as_str().to_string())
    }

    fn date(text: &str) -> Timestamp {
        Timestamp::parse(s3s::dto::TimestampFormat::DateTime, text).unwrap()
    }

    #[test]
    fn a_plain_configuration_is_valid() {
        assert_eq!(
            code(&config(vec![rule("a", 1, "x/"), rule("b", 2, "y/")])),
            None
        );
    }

    #[test]
    fn rules_without_an_id_get_one() {
        let mut unnamed = rule("x", 1, "x/");
        unnamed.id = None;
        let mut c = config(vec![unnamed.clone(), rule("a", 1, "y/"), unnamed]);
        name_rules(&mut c);
        let ids: HashSet<_> = c.rules.iter().map(|r| r.id.clone().unwrap()).collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(c.rules[1].id.as_deref(), Some("a"));
    }

    #[test]
    fn ids_are_short_and_unique() {
        assert_eq!(
            code(&config(vec![rule(&"a".repeat(256), 1, "x/")])).as_deref(),
            Some("InvalidArgument")
        );
        assert_eq!(code(&config(vec![rule(&"a".repeat(255), 1, "x/")])), None);
        assert_eq!(
            code(&config(vec![rule("a", 1, "x/"), rule("a", 2, "y/")])).as_deref(),
            Some("InvalidArgument")
        );
    }

    #[test]
    fn status_is_enabled_or_disabled_exactly() {
        for bad in ["enabled", "disabled", "invalid"] {
            let mut r = rule("a", 1, "x/");
            r.status = ExpirationStatus::from(bad.to_string());
            assert_eq!(code(&config(vec![r])).as_deref(), Some("MalformedXML"));
        }
        let mut r = rule("a", 1, "x/");
        r.status = ExpirationStatus::from_static(ExpirationStatus::DISABLED);
        assert_eq!(code(&config(vec![r])), None);
    }

    #[test]
    fn days_are_positive_and_dates_midnight() {
        assert_eq!(
            code(&config(vec![rule("a", 0, "x/")])).as_deref(),
            Some("InvalidArgument")
        );
        let mut r = rule("a", 1, "x/");
        r.expiration = Some(LifecycleExpiration {
            date: Some(date("2017-09-27T00:00:00Z")),
            ..LifecycleExpiration::default()
        });
        assert_eq!(code(&config(vec![r.clone()])), None);
        r.expiration.as_mut().unwrap().date = Some(date("2017-09-27T01:00:00Z"));
        assert_eq!(code(&config(vec![r])).as_deref(), Some("InvalidArgument"));
    }

    #[test]
    fn a_rule_needs_a_filter_or_prefix_and_an_action() {
        let mut r = rule("a", 1, "x/");
        r.prefix = None;
        assert_eq!(
            code(&config(vec![r.clone()])).as_deref(),
            Some("MalformedXML")
        );
        r.filter = Some(LifecycleRuleFilter::default());
        assert_eq!(code(&config(vec![r.clone()])), None);
        r.expiration = None;
        assert_eq!(code(&config(vec![r])).as_deref(), Some("InvalidRequest"));
        assert_eq!(code(&config(vec![])).as_deref(), Some("MalformedXML"));
        let many = (0..=MAX_RULES)
            .map(|i| rule(&i.to_string(), 1, "x/"))
            .collect();
        assert_eq!(code(&config(many)).as_deref(), Some("MalformedXML"));
    }

    #[test]
    fn transitions_are_refused_after_the_checks_and_tags_select() {
        let mut r = rule("a", 1, "x/");
        r.transitions = Some(vec![Transition {
            days: Some(1),
            storage_class: Some(TransitionStorageClass::from_static("GLACIER")),
            date: None,
        }]);
        assert_eq!(
            code(&config(vec![r.clone()])).as_deref(),
            Some("NotImplemented")
        );
        r.transitions.as_mut().unwrap()[0].date = Some(date("2022-09-27T10:00:00Z"));
        assert_eq!(code(&config(vec![r])).as_deref(), Some("InvalidArgument"));
        // A tag filter is honoured: an object is selected by its tags once they are read.
        let mut r = rule("a", 1, "x/");
        r.prefix = None;
        r.filter = Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some("x/".into()),
                tags: Some(vec![Tag {
                    key: Some("k".into()),
                    value: Some("v".into()),
                }]),
                ..LifecycleRuleAndOperator::default()
            }),
            ..LifecycleRuleFilter::default()
        });
        let mut both = r.clone();
        both.filter.as_mut().unwrap().prefix = Some("x/".into());
        assert_eq!(code(&config(vec![both])).as_deref(), Some("MalformedXML"));
        let c = config(vec![r]);
        assert_eq!(code(&c), None);
        assert!(needs_tags(&c));
        let tagged = Tags::from([("k".to_string(), "v".to_string())]);
        let other = Tags::from([("k".to_string(), "w".to_string())]);
        let object = |tags| Candidate {
            key: "x/1",
            size: Some(1),
            since_ms: 0,
            tags,
        };
        assert!(object_expired(&c, &object(Some(&tagged)), DAY_MS, DAY_MS));
        assert!(!object_expired(&c, &object(Some(&other)), DAY_MS, DAY_MS));
        assert!(!object_expired(&c, &object(None), DAY_MS, DAY_MS));
    }

    #[test]
    fn objects_expire_at_the_midnight_after_their_days() {
        let c = config(vec![rule("a", 1, "x/")]);
        // Written at 10:00 on day 5: due at midnight starting day 7.
        let since_ms = 5 * DAY_MS + 10 * 3_600_000;
        let object = Candidate {
            key: "x/1",
            size: Some(3),
            since_ms,
            tags: None,
        };
        assert!(!object_expired(&c, &object, 7 * DAY_MS - 1, DAY_MS));
        assert!(object_expired(&c, &object, 7 * DAY_MS, DAY_MS));
        let other = Candidate {
            key: "y/1",
            ..object
        };
        assert!(!object_expired(&c, &other, 100 * DAY_MS, DAY_MS));
        // A short test day: one second.
        let object = Candidate {
            key: "x/1",
            size: None,
            since_ms: 1_500,
            tags: None,
        };
        assert!(!object_expired(&c, &object, 2_499, 1_000));
        assert!(object_expired(&c, &object, 2_500, 1_000));
    }

    #[test]
    fn disabled_rules_size_filters_and_dates() {
        let mut r = rule("a", 1, "");
        r.status = ExpirationStatus::from_static(ExpirationStatus::DISABLED);
        let object = Candidate {
            key: "k",
            size: Some(10),
            since_ms: 0,
            tags: None,
        };
        assert!(!object_expired(
            &config(vec![r.clone()]),
            &object,
            10 * DAY_MS,
            DAY_MS
        ));
        r.status = ExpirationStatus::from_static(ExpirationStatus::ENABLED);
        r.prefix = None;
        r.filter = Some(LifecycleRuleFilter {
            object_size_greater_than: Some(10),
            ..LifecycleRuleFilter::default()
        });
        assert!(!object_expired(
            &config(vec![r.clone()]),
            &object,
            10 * DAY_MS,
            DAY_MS
        ));
        r.filter.as_mut().unwrap().object_size_greater_than = Some(9);
        assert!(object_expired(
            &config(vec![r]),
            &object,
            10 * DAY_MS,
            DAY_MS
        ));
        let mut r = rule("d", 1, "");
        r.expiration = Some(LifecycleExpiration {
            date: Some(date("1970-01-03T00:00:00Z")),
            ..LifecycleExpiration::default()
        });
        let c = config(vec![r]);
        assert!(!object_expired(&c, &object, 2 * DAY_MS - 1, DAY_MS));
        assert!(object_expired(&c, &object, 2 * DAY_MS, DAY_MS));
    }

    #[test]
    fn uploads_are_aborted_after_their_days() {
        let mut r = rule("a", 1, "x/");
        r.expiration = None;
        r.abort_incomplete_multipart_upload = Some(AbortIncompleteMultipartUpload {
            days_after_initiation: Some(2),
        });
        let c = config(vec![r]);
        assert!(acts(&c));
        let upload = Candidate {
            key: "x/big",
            size: None,
            since_ms: 0,
            tags: None,
        };
        assert!(!upload_expired(&c, &upload, 2 * DAY_MS - 1, DAY_MS));
        assert!(upload_expired(&c, &upload, 2 * DAY_MS, DAY_MS));
        assert!(!object_expired(&c, &upload, 9 * DAY_MS, DAY_MS));
    }
}
