//! The notification command (`[notify] command`): run once per event with
//! the event as one JSON line on standard input, then standard input
//! closed. Its standard output is discarded, its standard error goes to
//! giftlock's log stream. Killed after `command_timeout_secs`. The event
//! never holds a code ([`super::Event`]).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::{debug, warn};

use super::{Delivery, NotifyConfig};

/// Runs the command for `delivery`; failures are logged.
pub async fn run(config: &NotifyConfig, delivery: &Delivery) {
    let Some((program, args)) = config.command.split_first() else {
        return;
    };
    let mut line = match serde_json::to_vec(delivery) {
        Ok(line) => line,
        Err(e) => {
            warn!(error = %e, "cannot encode a notification");
            return;
        }
    };
    line.push(b'\n');
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            warn!(program = %program, error = %e, "cannot start the notification command");
            return;
        }
    };
    let limit = Duration::from_secs(config.command_timeout_secs);
    let finished = tokio::time::timeout(limit, async {
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input is its own business.
            let _ = stdin.write_all(&line).await;
        }
        child.wait().await
    })
    .await;
    match finished {
        Ok(Ok(status)) if status.success() => {
            debug!(program = %program, "notification command done")
        }
        Ok(Ok(status)) => warn!(program = %program, %status, "notification command failed"),
        Ok(Err(e)) => warn!(program = %program, error = %e, "notification command failed"),
        Err(_) => {
            // kill_on_drop ends it; say why.
            warn!(
                program = %program,
                timeout_secs = config.command_timeout_secs,
                "notification command took too long; killed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{Alert, Event};

    fn delivery() -> Delivery {
        let event = Event::Alert(Alert {
            kind: "mass_download".into(),
            account: None,
            session: None,
            detail: "900 bodies".into(),
        });
        Delivery {
            time: "t".into(),
            title: event.title(),
            text: event.text(None),
            page: None,
            event,
        }
    }

    #[tokio::test]
    async fn the_command_gets_one_json_line_and_a_slow_one_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("event.json");
        let config = NotifyConfig {
            command: vec!["sh".into(), "-c".into(), format!("cat > {}", out.display())],
            ..NotifyConfig::default()
        };
        run(&config, &delivery()).await;
        let written = std::fs::read_to_string(&out).unwrap();
        assert_eq!(written.lines().count(), 1);
        let json: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(json["event"], "alert");
        assert_eq!(json["title"], "giftlock alert: mass download");

        let slow = NotifyConfig {
            command: vec!["sleep".into(), "30".into()],
            command_timeout_secs: 1,
            ..NotifyConfig::default()
        };
        let started = std::time::Instant::now();
        run(&slow, &delivery()).await;
        assert!(started.elapsed() < Duration::from_secs(20));
        // A program that does not exist is logged, not fatal.
        let missing = NotifyConfig {
            command: vec!["/nonexistent/giftlock-notify".into()],
            ..NotifyConfig::default()
        };
        run(&missing, &delivery()).await;
    }
}
