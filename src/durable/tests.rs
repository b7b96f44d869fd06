use super::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn replace_sets_the_mode_replaces_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a/b");
    private_dir(&sub).unwrap();
    assert_eq!(mode(&sub), 0o700);
    let f = sub.join("f");
    replace(&f, b"one", 0o600).unwrap();
    replace(&f, b"two", 0o644).unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"two");
    assert_eq!(mode(&f), 0o644);
    assert_eq!(names(&sub), ["f"]);
}

#[test]
fn create_new_never_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("key");
    create_new(&f, b"first", 0o600).unwrap();
    let again = create_new(&f, b"second", 0o600).unwrap_err();
    assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read(&f).unwrap(), b"first");
    assert_eq!(mode(&f), 0o600);
    assert_eq!(names(dir.path()), ["key"]);
}

#[test]
fn open_append_creates_with_the_mode_and_narrows_a_wider_one() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("log");
    open_append(&f, 0o600).unwrap().write_all(b"a\n").unwrap();
    assert_eq!(mode(&f), 0o600);
    fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
    open_append(&f, 0o600).unwrap().write_all(b"b\n").unwrap();
    assert_eq!(mode(&f), 0o600);
    assert_eq!(fs::read(&f).unwrap(), b"a\nb\n");
}

#[test]
fn concurrent_writers_of_one_file_all_succeed_and_one_wins_whole() {
    // One temporary name per writer: they used to collide and fail.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("plan.json");
    std::thread::scope(|s| {
        for t in 0..8u8 {
            let f = &f;
            s.spawn(move || {
                for _ in 0..20 {
                    replace(f, &[t; 4096], 0o600).unwrap();
                }
            });
        }
    });
    let content = fs::read(&f).unwrap();
    assert_eq!(content.len(), 4096);
    assert!(content.iter().all(|&b| b == content[0]));
    assert_eq!(names(dir.path()), ["plan.json"]);
}

#[test]
fn leftover_temporaries_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(format!("{TEMP_PREFIX}x.1.0")), b"half").unwrap();
    fs::write(dir.path().join("keep"), b"whole").unwrap();
    assert_eq!(remove_temporaries(dir.path()).unwrap(), 1);
    assert_eq!(names(dir.path()), ["keep"]);
}

/// Where the child writer of the crash test writes; unset in a normal run.
const CHILD_DIR: &str = "GL_DURABLE_CRASH_CHILD_DIR";
/// The big version the child writes again and again until it is killed.
const BIG: usize = 64 << 20;

/// A version: a length, then that many copies of one byte.
fn version(byte: u8, len: usize) -> Vec<u8> {
    let mut v = (len as u64).to_be_bytes().to_vec();
    v.resize(8 + len, byte);
    v
}

fn is_whole_version(bytes: &[u8]) -> bool {
    let Some((len, body)) = bytes.split_first_chunk::<8>() else {
        return false;
    };
    u64::from_be_bytes(*len) as usize == body.len() && body.iter().all(|&b| b == body[0])
}

/// The child of [`a_writer_killed_mid_write_leaves_the_old_file_whole`]:
/// does nothing unless that test started it.
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let target = Path::new(&dir).join("state");
    replace(&target, &version(b'a', 1024), 0o600).unwrap();
    let big = version(b'b', BIG);
    // Bounded: the parent kills it long before this ends.
    for _ in 0..50 {
        replace(&target, &big, 0o600).unwrap();
    }
}

#[test]
fn a_writer_killed_mid_write_leaves_the_old_file_whole() {
    let exe = std::env::current_exe().unwrap();
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "durable::tests::crash_child_writer",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill it as soon as a write of the big version is under way: the
        // first version is in place and a temporary file is being written.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let writing = |names: Vec<String>| {
            names.iter().any(|n| n == "state") && names.iter().any(|n| n.starts_with(TEMP_PREFIX))
        };
        while !writing(names(dir.path())) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never wrote"
            );
            assert!(child.try_wait().unwrap().is_none(), "the child ended early");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let visible: Vec<String> = names(dir.path())
            .into_iter()
            .filter(|n| !n.starts_with(TEMP_PREFIX))
            .collect();
        assert_eq!(visible, ["state"], "round {round}");
        let state = fs::read(dir.path().join("state")).unwrap();
        assert!(
            is_whole_version(&state),
            "round {round}: a partial file is visible ({} bytes)",
            state.len()
        );
        remove_temporaries(dir.path()).unwrap();
        assert_eq!(names(dir.path()), ["state"]);
    }
}
