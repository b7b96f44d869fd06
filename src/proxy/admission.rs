//! How many connections may wait to log in at once: `limits.max_unauthenticated`
//! on all listeners together, `limits.max_unauthenticated_per_listener` on
//! each. A connection holds an [`Admitted`] from accept until it is logged
//! in (or gone); past a limit a new one is turned away at once, so a flood
//! of idle or slow connections costs no more than the limits' worth of TLS
//! state and buffers, and logged-in sessions are never the ones refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Limits;

/// Counts of connections not logged in yet.
#[derive(Default)]
pub struct Admission {
    total: Arc<AtomicU32>,
    per_listener: Mutex<HashMap<SocketAddr, Arc<AtomicU32>>>,
    /// Turned away since the last warning, and when that was: a flood
    /// gets one log line per [`WARN_EVERY`], not one per connection.
    refused: AtomicU64,
    warned: Mutex<Option<Instant>>,
}

const WARN_EVERY: Duration = Duration::from_secs(10);

/// A connection's place among those waiting to log in; given back on drop.
pub struct Admitted {
    counters: [Arc<AtomicU32>; 2],
}

impl Drop for Admitted {
    fn drop(&mut self) {
        for c in &self.counters {
            c.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Admission {
    /// A place for a new connection on `listener`, or `None` when a limit
    /// is reached (logged, rate-limited).
    pub fn admit(&self, listener: SocketAddr, limits: &Limits) -> Option<Admitted> {
        let here = self
            .per_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(listener)
            .or_default()
            .clone();
        let admitted = Admitted {
            counters: [self.total.clone(), here],
        };
        let [total, here] = &admitted.counters;
        // Counted first, checked after: a connection over a limit is
        // refused and its count dropped with `admitted`.
        let total = total.fetch_add(1, Ordering::AcqRel) + 1;
        let here = here.fetch_add(1, Ordering::AcqRel) + 1;
        if total <= limits.max_unauthenticated && here <= limits.max_unauthenticated_per_listener {
            return Some(admitted);
        }
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *warned = Some(Instant::now());
            self.refused.store(0, Ordering::Relaxed);
            tracing::warn!(
                listener = %listener,
                refused,
                waiting = total - 1,
                waiting_here = here - 1,
                max_unauthenticated = limits.max_unauthenticated,
                max_unauthenticated_per_listener = limits.max_unauthenticated_per_listener,
                "too many connections waiting to log in; turning new ones away (limits.max_unauthenticated*)"
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_per_listener_and_in_total_and_places_come_back() {
        let limits = Limits {
            max_unauthenticated: 3,
            max_unauthenticated_per_listener: 2,
            ..Limits::default()
        };
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let gate = Admission::default();
        let a1 = gate.admit(a, &limits).unwrap();
        let _a2 = gate.admit(a, &limits).unwrap();
        assert!(gate.admit(a, &limits).is_none(), "per listener");
        let _b1 = gate.admit(b, &limits).unwrap();
        assert!(gate.admit(b, &limits).is_none(), "in total");
        drop(a1);
        let _b2 = gate.admit(b, &limits).unwrap();
        assert_eq!(gate.total.load(Ordering::Acquire), 3);
    }
}
