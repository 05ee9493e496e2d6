//! Process set-up shared by the server binaries: logging, panics and shutdown signals.

use std::process::ExitCode;
use std::str::FromStr;

use tokio_util::sync::CancellationToken;

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event, with its spans' fields.
    #[default]
    Text,
    /// One JSON object per line, for log collectors: `timestamp`, `level`, `fields` (the
    /// message among them), `target`, and `span`/`spans` with the request's fields.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format: text or json")),
        }
    }
}

/// Logs to stderr in `format`; `RUST_LOG` overrides the default level (info).
pub fn init_tracing(format: LogFormat) {
    init_tracing_with(format, &[]);
}

/// As [`init_tracing`], with `defaults`, directives such as `"s3s=off"`, added to the filter
/// unless `RUST_LOG` names their target itself: a binary quiets a noisy dependency, and
/// whoever debugs it can still turn that dependency's logs back on.
pub fn init_tracing_with(format: LogFormat, defaults: &[&str]) {
    let rust_log = std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV).ok();
    let filter = tracing_subscriber::EnvFilter::try_new(filter_spec(rust_log.as_deref(), defaults))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter_spec(None, defaults)));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

/// The filter directives: `RUST_LOG` (or `info` without it), then each of `defaults` whose
/// target `RUST_LOG` does not mention.
fn filter_spec(rust_log: Option<&str>, defaults: &[&str]) -> String {
    let given = rust_log.map(str::trim).filter(|s| !s.is_empty());
    let mut spec = given.unwrap_or("info").to_string();
    for directive in defaults {
        let target = directive.split('=').next().unwrap_or(directive);
        if !given.is_some_and(|g| g.contains(target)) {
            spec.push(',');
            spec.push_str(directive);
        }
    }
    spec
}

/// A server's exit status once its run returned `result`: a failure is logged, and written
/// plainly to stderr as `program: error` too, for whoever started it by hand (with
/// `--log-format json` the log line is not for them).
pub fn exit_code<E: std::fmt::Display>(program: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A panic anywhere aborts the process after it is reported: a server with a dead task must not
/// limp on half alive and keep acknowledging work.
pub fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!("cannot listen for SIGTERM: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown signal received");
        trigger.cancel();
    });
    token
}

/// Binds a listener for flag `flag` (e.g. "--http-listen") before anything is served, so a
/// taken port fails startup; the error names the flag and the address.
pub async fn bind(addr: &str, flag: &str) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind {flag} {addr}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{filter_spec, LogFormat};

    #[test]
    fn defaults_apply_unless_rust_log_names_their_target() {
        assert_eq!(filter_spec(None, &["s3s=off"]), "info,s3s=off");
        assert_eq!(filter_spec(Some(" "), &[]), "info");
        assert_eq!(filter_spec(Some("debug"), &["s3s=off"]), "debug,s3s=off");
        assert_eq!(
            filter_spec(Some("info,s3s::ops=debug"), &["s3s=off"]),
            "info,s3s::ops=debug"
        );
    }

    #[test]
    fn log_formats_parse_by_name() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        let err = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(err.contains("text or json"), "{err}");
    }
}
