//! The diagnostic log on standard error: the filter from `GIFTLOCK_LOG`
//! (or `RUST_LOG`, default `info`), text or JSON lines.
//!
//! One message of a library is dropped on its way: rustls warns "Illegal
//! SNI extension: ignoring IP address presented as hostname" for every
//! client that connects to an IP address and names it in the TLS server
//! name (neomutt, OpenSSL-based clients). RFC 6066 forbids it, but it is
//! what those clients do, rustls then simply resolves no name (giftlock's
//! certificate carries 127.0.0.1 and ::1 for them), and a warning per
//! connection would drown the log. rustls logs it while it decodes the
//! ClientHello, before any certificate resolver runs, so no resolver can
//! prevent it: it is filtered here, by its target and words, and nothing
//! else rustls says is touched.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// The rustls module that decodes the ClientHello.
const RUSTLS_HANDSHAKE: &str = "rustls::msgs::handshake";
/// The start of the warning for an IP address as server name.
const IP_AS_SNI: &str = "Illegal SNI extension: ignoring IP address";

/// Sets up the log for this process (once; later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = std::env::var("GIFTLOCK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Text => fmt.with_filter(IpSniQuiet).boxed(),
        LogFormat::Json => fmt.json().with_filter(IpSniQuiet).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(EnvFilter::new(filter))
        .with(layer)
        .try_init();
}

/// Lets everything through except rustls's warning about an IP address
/// as server name.
struct IpSniQuiet;

impl<S> Filter<S> for IpSniQuiet {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        let mut seen = Seen::default();
        event.record(&mut seen);
        let target = seen
            .log_target
            .as_deref()
            .unwrap_or(event.metadata().target());
        !(target == RUSTLS_HANDSHAKE && seen.message.starts_with(IP_AS_SNI))
    }
}

/// The fields the filter looks at: the message, and the target of an event
/// that came through the `log` bridge (its metadata says only "log").
#[derive(Default)]
struct Seen {
    message: String,
    log_target: Option<String>,
}

impl Visit for Seen {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "log.target" => self.log_target = Some(value.to_string()),
            "message" => self.message = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn only_the_ip_sni_warning_is_dropped() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(IpSniQuiet),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "rustls::msgs::handshake", "Illegal SNI extension: ignoring IP address presented as hostname ([49])");
            tracing::warn!(target: "rustls::msgs::handshake", "Illegal SNI hostname received \"x y\"");
            tracing::warn!(target: "giftlock::proxy", "Illegal SNI extension: ignoring IP address, said elsewhere");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("presented as hostname"), "{text}");
        assert!(text.contains("Illegal SNI hostname received"), "{text}");
        assert!(text.contains("said elsewhere"), "{text}");
    }
}
