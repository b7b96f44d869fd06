mod common;
use common::*;
#[test]
fn smoke() {
    let mut bench = Bench::start(DovecotMode::Normal);
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir("/work/shared/corpus/labelled/gift")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut ham: Vec<std::path::PathBuf> = std::fs::read_dir("/work/shared/corpus/labelled/ham")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    ham.sort();
    files.extend(ham);
    bench.dovecot.add(USER, &files);
    let setup = GiftlockSetup::new(&[Tls::None], Upstream::Plain);
    bench.start_giftlock(&setup);
    let out = std::process::Command::new("python3")
        .arg("/tmp/smoke/smoke.py")
        .arg(setup.port(Tls::None).to_string())
        .arg(bench.dovecot.imap_port.to_string())
        .output()
        .unwrap();
    std::fs::write("/tmp/smoke/out.txt", &out.stdout).unwrap();
    std::fs::write("/tmp/smoke/err.txt", &out.stderr).unwrap();
    std::fs::write("/tmp/smoke/giftlock.log", bench.giftlock().log()).unwrap();
}
