//! Desktop notifications: `org.freedesktop.Notifications.Notify` on the
//! session bus (zbus). Without a session bus (a system service, a server)
//! this does nothing, and says so once in the log.

use std::collections::HashMap;
use std::time::Duration;

use tracing::{debug, info, warn};
use zbus::zvariant::Value;

use super::Delivery;

/// How long one Notify call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Shown for this long (milliseconds) unless the server decides otherwise.
const EXPIRE_MS: i32 = 15_000;

const DESTINATION: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// The session-bus connection, made on first use and made again after a
/// failure.
#[derive(Default)]
pub struct Desktop {
    connection: Option<zbus::Connection>,
    /// The missing bus was logged already.
    told_missing: bool,
}

impl Desktop {
    /// Shows `delivery`; failures are logged, never returned: a
    /// notification is worth a log line, not a service failure.
    pub async fn show(&mut self, delivery: &Delivery) {
        let Some(connection) = self.connection().await else {
            return;
        };
        let hints: HashMap<&str, Value<'_>> = HashMap::from([
            ("urgency", Value::U8(1)),
            ("category", Value::from("email")),
        ]);
        let body = escape(&delivery.text);
        let arguments = (
            "giftlock",
            0u32,
            "mail-message-new",
            delivery.title.as_str(),
            body.as_str(),
            Vec::<&str>::new(),
            hints,
            EXPIRE_MS,
        );
        let call = connection.call_method(
            Some(DESTINATION),
            PATH,
            Some(DESTINATION),
            "Notify",
            &arguments,
        );
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(_)) => debug!(title = %delivery.title, "desktop notification shown"),
            Ok(Err(e)) => {
                warn!(error = %e, "desktop notification failed");
                self.connection = None;
            }
            Err(_) => {
                warn!("desktop notification timed out");
                self.connection = None;
            }
        }
    }

    async fn connection(&mut self) -> Option<zbus::Connection> {
        if let Some(c) = &self.connection {
            return Some(c.clone());
        }
        match tokio::time::timeout(CALL_TIMEOUT, zbus::Connection::session()).await {
            Ok(Ok(c)) => {
                self.told_missing = false;
                self.connection = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                self.missing(&e.to_string());
                None
            }
            Err(_) => {
                self.missing("connecting timed out");
                None
            }
        }
    }

    fn missing(&mut self, why: &str) {
        if !self.told_missing {
            info!(reason = %why, "no D-Bus session bus: no desktop notification ([notify] command still runs)");
            self.told_missing = true;
        }
    }
}

/// The body may be read as markup by the notification server.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_in_the_body_is_escaped() {
        assert_eq!(
            super::escape("from A&B <gc@example.com>"),
            "from A&amp;B &lt;gc@example.com&gt;"
        );
    }
}
