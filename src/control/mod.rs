//! The local control socket: how `giftlock reveal` asks the running service
//! for codes. The service holds the vault key and the failure delay; the
//! command line only sends the request and prints the answer.
//!
//! The socket is `STATE_DIR/control.sock`, mode 0600 in the 0700 state
//! directory: only the user the service runs as (and root) can connect.
//! It lives in the state directory rather than under `$XDG_RUNTIME_DIR`
//! because the command line already finds the state directory through the
//! config, for a user service and a system service alike.
//!
//! * [`protocol`]: one JSON request per line, one JSON response per line.
//! * [`server`]: the service side, started by `giftlock serve`.
//! * [`client`]: the command-line side.
//! * [`secret`]: the unlock secret (an argon2id hash in the state directory).

pub mod client;
pub mod protocol;
pub mod secret;
pub mod server;

use std::path::{Path, PathBuf};

/// The socket's file name in the state directory.
pub const SOCKET: &str = "control.sock";

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}
