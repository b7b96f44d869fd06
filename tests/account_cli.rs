//! `giftlock account add|set-secret|set-ca|remove` on a hand-edited config
//! (comments, blank lines, odd spacing) against a real Dovecot: each
//! command changes only its key or its account's lines, byte for byte; a
//! secret the server refuses and a file that is no PEM certificate change
//! nothing; errors name the account and the key; no password is printed.

mod common;
mod needs;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use needs::Need;

const WRONG: &str = "wrong-upstream-pw-Zk3";

fn account(config: &Path, bench: &Bench, args: &[&str], stdin: &str) -> Run {
    let mut all = vec!["account"];
    all.extend_from_slice(args);
    giftlock_cli(config, &bench.path().join("giftlock/cli"), &all, stdin)
}

/// The bench's config with a user's comments and spacing in it.
fn hand_edited(bench: &mut Bench) -> (std::path::PathBuf, String) {
    let setup = GiftlockSetup::new(&[Tls::Implicit], Upstream::Imaps);
    let path = bench.write_giftlock_config(&setup);
    let text = fs::read_to_string(&path)
        .unwrap()
        .replacen("[general]", "# My own notes, kept.\n[general]  # top", 1)
        .replacen("[[accounts]]", "# the test account\n[[accounts]]", 1)
        .replacen("user = ", "user =   ", 1)
        + "\n# trailing comment\n";
    fs::write(&path, &text).unwrap();
    (path, text)
}

#[test]
fn account_commands_change_one_thing_and_keep_every_other_byte() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let (config, original) = hand_edited(&mut bench);
    let d = bench.dovecot.clone();
    let secret_file = bench.path().join("giftlock/test.secret");
    let secret_arg = secret_file.display().to_string();
    let env_line = format!("secret = \"env:{SECRET_ENV}\"");

    // A refused password writes nothing and says which account.
    let run = account(
        &config,
        &bench,
        &[
            "set-secret",
            "test",
            "--secret-stdin",
            "--secret-store",
            "file",
            "--secret-path",
            &secret_arg,
        ],
        WRONG,
    );
    assert_eq!(run.code(), Some(2), "{}", run.stdout);
    assert!(run.stderr.contains("account test"), "{}", run.stderr);
    assert!(run.stderr.contains("refused the login"), "{}", run.stderr);
    assert!(!run.stderr.contains(WRONG), "{}", run.stderr);
    assert_eq!(fs::read_to_string(&config).unwrap(), original);
    assert!(!secret_file.exists());

    // The right one: stored 0600, only the secret value changed.
    let run = account(
        &config,
        &bench,
        &[
            "set-secret",
            "test",
            "--secret-stdin",
            "--secret-store",
            "file",
            "--secret-path",
            &secret_arg,
        ],
        UPSTREAM_PASSWORD,
    );
    assert!(run.success(), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(fs::read_to_string(&secret_file).unwrap(), UPSTREAM_PASSWORD);
    let mode = fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let with_file = original.replacen(&env_line, &format!("secret = \"file:{secret_arg}\""), 1);
    assert_ne!(with_file, original);
    assert_eq!(fs::read_to_string(&config).unwrap(), with_file);
    // Again, to where it is now: the file replaced, the config untouched.
    let run = account(
        &config,
        &bench,
        &["set-secret", "test", "--secret-stdin"],
        UPSTREAM_PASSWORD,
    );
    assert!(run.success(), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(fs::read_to_string(&config).unwrap(), with_file);

    // set-ca: not PEM refused (the file named), a CA file replaces the value.
    let not_pem = bench.path().join("giftlock/not-a-cert.txt");
    fs::write(&not_pem, "hello\n").unwrap();
    let run = account(
        &config,
        &bench,
        &["set-ca", "test", &not_pem.display().to_string()],
        "",
    );
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr.contains("not-a-cert.txt"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(&config).unwrap(), with_file);
    let ca = d.untrusted_ca_file.display().to_string();
    let run = account(&config, &bench, &["set-ca", "test", &ca], "");
    assert!(run.success(), "{}\n{}", run.stdout, run.stderr);
    let old_ca = format!("ca_file = \"{}\"", d.ca_file.display());
    let with_ca = with_file.replacen(&old_ca, &format!("ca_file = \"{ca}\""), 1);
    assert_eq!(fs::read_to_string(&config).unwrap(), with_ca);
    let run = account(&config, &bench, &["set-ca", "travel", &ca], "");
    assert_eq!(run.code(), Some(2));
    assert!(
        run.stderr.contains("no account `travel`") && run.stderr.contains("test"),
        "{}",
        run.stderr
    );
    // Back to the trusted CA for the rest.
    let run = account(
        &config,
        &bench,
        &["set-ca", "test", &d.ca_file.display().to_string()],
        "",
    );
    assert!(run.success(), "{}", run.stderr);
    assert_eq!(fs::read_to_string(&config).unwrap(), with_file);

    // add: without the CA the certificate is named as the problem; with a
    // wrong password nothing is written; then the account is appended.
    let url = format!("imaps://localhost:{}", d.imaps_port());
    let second_secret = bench.path().join("giftlock/second.secret");
    let second_arg = second_secret.display().to_string();
    let hash = local_password_hash().to_string();
    let add = |ca: Option<&str>, pw: &str| {
        let mut args = vec![
            "add",
            "second",
            "--imap-url",
            &url,
            "--upstream-user",
            USER,
            "--local-user",
            "bob",
            "--local-password-hash",
            &hash,
            "--upstream-secret-stdin",
            "--secret-store",
            "file",
            "--secret-path",
            &second_arg,
        ];
        if let Some(ca) = ca {
            args.extend(["--upstream-ca-file", ca]);
        }
        account(&config, &bench, &args, pw)
    };
    let run = add(None, UPSTREAM_PASSWORD);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr.contains("not trusted"), "{}", run.stderr);
    let trusted = d.ca_file.display().to_string();
    let run = add(Some(&trusted), WRONG);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr.contains("account second"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(&config).unwrap(), with_file);
    assert!(!second_secret.exists());
    let run = add(Some(&trusted), UPSTREAM_PASSWORD);
    assert!(run.success(), "{}\n{}", run.stdout, run.stderr);
    let added = fs::read_to_string(&config).unwrap();
    assert!(added.starts_with(&with_file), "{added}");
    assert!(added[with_file.len()..].contains("name = \"second\""));
    assert_eq!(
        fs::read_to_string(&second_secret).unwrap(),
        UPSTREAM_PASSWORD
    );
    let run = add(Some(&trusted), UPSTREAM_PASSWORD);
    assert!(run.stderr.contains("`second` is already"), "{}", run.stderr);
    // The new config checks out: both logins work.
    let check = giftlock_check(&config, &bench.path().join("giftlock/cli"));
    for name in ["test", "second"] {
        assert!(
            check.stdout.contains(&format!("PASS upstream {name} ")),
            "{}",
            check.stdout
        );
    }

    // remove: unknown refused with the names there are; the added account
    // goes and the file is what it was before it.
    let run = account(&config, &bench, &["remove", "travel"], "");
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr.contains("test, second"), "{}", run.stderr);
    let run = account(&config, &bench, &["remove", "second"], "");
    assert!(run.success(), "{}", run.stderr);
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        format!("{with_file}\n")
    );
    // No password in anything the commands printed (their inputs and the
    // secret files hold them on purpose).
    let cli = bench.path().join("giftlock/cli");
    let inputs: Vec<_> = fs::read_dir(&cli)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("stdin-")
        })
        .collect();
    let found = files_containing(&cli, &[UPSTREAM_PASSWORD, WRONG, LOCAL_PASSWORD], &inputs);
    assert!(found.is_empty(), "passwords printed in {found:?}");
}

#[test]
fn account_add_with_quarantine_on_writes_the_table_and_makes_the_key() {
    if needs::missing(&[Need::Dovecot]) {
        return;
    }
    let mut bench = Bench::start(DovecotMode::Normal);
    let (config, _) = hand_edited(&mut bench);
    let key = bench.path().join("giftlock/state/quarantine.key");
    assert!(!key.exists());
    let url = format!("imaps://localhost:{}", bench.dovecot.imaps_port());
    let ca = bench.dovecot.ca_file.display().to_string();
    let hash = local_password_hash().to_string();
    let add = |name: &str, quarantine: &str| {
        let secret = bench.path().join(format!("giftlock/{name}.secret"));
        let secret = secret.display().to_string();
        let args = [
            "add",
            name,
            // The Gmail preset's removal, with the bench as its server.
            "--provider",
            "gmail",
            "--imap-url",
            &url,
            "--upstream-ca-file",
            &ca,
            "--upstream-user",
            USER,
            "--local-user",
            name,
            "--local-password-hash",
            &hash,
            "--upstream-secret-stdin",
            "--secret-store",
            "file",
            "--secret-path",
            &secret,
            "--quarantine",
            quarantine,
        ];
        account(&config, &bench, &args, UPSTREAM_PASSWORD)
    };

    let before = fs::read_to_string(&config).unwrap();
    let run = add("kept", "on");
    assert!(run.success(), "{}\n{}", run.stdout, run.stderr);
    let added = fs::read_to_string(&config).unwrap();
    let table = &added[before.len()..];
    assert!(
        table.contains("[accounts.quarantine]\nenabled = true\n")
            && table.contains("remove = \"trash\""),
        "{table}"
    );
    assert!(key.exists(), "no quarantine key: {}", run.stdout);
    assert!(
        run.stdout.contains("Quarantine key: made"),
        "{}",
        run.stdout
    );

    let run = add("plain", "off");
    assert!(run.success(), "{}\n{}", run.stdout, run.stderr);
    let plain = fs::read_to_string(&config).unwrap()[added.len()..].to_string();
    assert!(plain.contains("name = \"plain\""), "{plain}");
    assert!(!plain.contains("[accounts.quarantine]"), "{plain}");
    // The config loads with both: check sees the quarantine account's key.
    let check = giftlock_check(&config, &bench.path().join("giftlock/cli"));
    assert!(
        check.stdout.contains("PASS upstream kept "),
        "{}",
        check.stdout
    );
}
