//! The verdict on a cluster's chunk health, from one fsck report: the word `bigfs fsck` ends
//! with and the console's header shows, decided in one place so that both always agree.

use bigfs_proto::pb::FsckResponse;

/// How the cluster's data stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every chunk has all the copies it wants.
    Healthy,
    /// Some chunks are short of copies and repair is under way (or waits for safe mode).
    Healing,
    /// Some chunks are short of copies and nothing repairs them now.
    Degraded,
    /// Some chunk has no live copy: reads of its files fail.
    Unavailable,
}

impl Verdict {
    pub fn of(report: &FsckResponse) -> Self {
        if report.missing > 0 {
            Self::Unavailable
        } else if report.corrupt == 0 && report.under_replicated == 0 {
            Self::Healthy
        } else if report.repairs_in_flight > 0 || report.safe_mode {
            Self::Healing
        } else {
            Self::Degraded
        }
    }

    /// One lower-case word for machines and CSS classes.
    pub fn word(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Healing => "healing",
            Self::Degraded => "degraded",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The counts behind a verdict other than healthy: "2 missing, 5 under-replicated".
pub fn problems(report: &FsckResponse) -> String {
    [
        (report.missing, "missing"),
        (report.corrupt, "corrupt"),
        (report.under_replicated, "under-replicated"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} {what}"))
    .collect::<Vec<_>>()
    .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_outranks_everything_and_repairs_make_it_healing() {
        let mut report = FsckResponse::default();
        assert_eq!(Verdict::of(&report), Verdict::Healthy);
        report.under_replicated = 5;
        assert_eq!(Verdict::of(&report), Verdict::Degraded);
        report.repairs_in_flight = 1;
        assert_eq!(Verdict::of(&report), Verdict::Healing);
        report.missing = 2;
        assert_eq!(Verdict::of(&report), Verdict::Unavailable);
        assert_eq!(problems(&report), "2 missing, 5 under-replicated");
    }
}
