//! A private D-Bus session bus for a test (dbus-daemon in the test's
//! directory), and GNOME Keyring's Secret Service on it: the desktop a
//! notification or an OS keyring entry goes to, without the developer's.

#![allow(dead_code)] // each test binary uses its part

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A session bus without service activation: the standard session config
/// would start the machine's own `gnome-keyring-daemon` (its
/// org.freedesktop.secrets.service) for a `secret-tool` that asks before
/// the test's daemon has taken its name; that one, not unlocked, has no
/// login collection (seen in CI: "Object does not exist at path
/// /org/freedesktop/secrets/collection/login" for the whole wait). Here a
/// name nobody owns yet is an error, and the caller retries.
const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>LISTEN</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

/// A private session bus; killed on drop.
pub struct Bus {
    daemon: Child,
    pub address: String,
}

impl Bus {
    pub fn start(dir: &Path) -> Bus {
        let socket = dir.join("session-bus");
        let config = dir.join("session-bus.conf");
        let listen = format!("unix:path={}", socket.display());
        std::fs::write(&config, BUS_CONFIG.replace("LISTEN", &listen))
            .expect("write the bus configuration");
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut line = String::new();
        BufReader::new(daemon.stdout.take().expect("dbus-daemon stdout"))
            .read_line(&mut line)
            .expect("dbus-daemon prints its address");
        assert!(line.starts_with("unix:"), "dbus-daemon said {line:?}");
        Bus {
            daemon,
            address: line.trim().to_string(),
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// GNOME Keyring's daemon serving the Secret Service on its own bus, its
/// keyrings (encrypted on disk) under `dir/keyring-data`, the login
/// keyring created and unlocked at start. Killed on drop, before its bus.
pub struct Keyring {
    daemon: Child,
    bus: Bus,
    data: PathBuf,
}

/// The login keyring's password (it encrypts the keyring file).
const KEYRING_PASSWORD: &str = "test-keyring-password";

impl Keyring {
    pub fn start(dir: &Path) -> Keyring {
        let bus = Bus::start(dir);
        let data = dir.join("keyring-data");
        let runtime = dir.join("keyring-runtime");
        for d in [&data, &runtime] {
            std::fs::create_dir_all(d).expect("create the keyring's directories");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("XDG_DATA_HOME", &data)
            .env("XDG_RUNTIME_DIR", &runtime)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        // --unlock reads the password from stdin until it closes.
        let mut stdin = daemon.stdin.take().unwrap();
        stdin.write_all(KEYRING_PASSWORD.as_bytes()).unwrap();
        drop(stdin);
        let keyring = Keyring { daemon, bus, data };
        keyring.wait_until_it_answers();
        keyring
    }

    /// The environment a process needs to reach this keyring.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("DBUS_SESSION_BUS_ADDRESS".into(), self.bus.address.clone())]
    }

    /// `secret-tool lookup service SERVICE username USER`: the secret, or
    /// `None` when there is no such item.
    pub fn lookup(&self, service: &str, user: &str) -> Option<String> {
        let out = Command::new("secret-tool")
            .args(["lookup", "service", service, "username", user])
            .envs(self.env())
            .output()
            .expect("run secret-tool");
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).expect("a UTF-8 secret"))
    }

    /// Where the keyring files are (encrypted with the login password).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Waits (bounded) until the Secret Service stores a secret: answering
    /// a search is not enough, the login collection may still be locked
    /// while `--unlock` is at work (seen on a loaded machine: giftlock's
    /// store then failed with "the keyring is locked"). The probe item is
    /// removed again. Each try is bounded too (`timeout`), in case a
    /// locked collection waits for a prompt.
    fn wait_until_it_answers(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let probe = ["service", "giftlock-test-probe", "username", "probe"];
        loop {
            let mut store = Command::new("timeout")
                .args(["5", "secret-tool", "store", "--label=giftlock test probe"])
                .args(probe)
                .envs(self.env())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run secret-tool");
            store.stdin.take().unwrap().write_all(b"probe").unwrap();
            let out = store.wait_with_output().expect("wait for secret-tool");
            if out.status.success() {
                let cleared = Command::new("secret-tool")
                    .arg("clear")
                    .args(probe)
                    .envs(self.env())
                    .status()
                    .expect("run secret-tool");
                assert!(cleared.success(), "cannot remove the keyring probe");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "GNOME Keyring does not store a secret: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
