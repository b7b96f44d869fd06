//! Throughput of plan_message on the shared corpus: the public ham set and
//! the labelled gift mail. Reported in bytes per second (criterion prints
//! MiB/s). `GIFTLOCK_CORPUS` overrides the corpus location.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use giftlock::detect::Detector;
use giftlock::mask::{plan_message, FingerprintKey, ScanLimits};

#[path = "../tests/needs/mod.rs"]
mod needs;

fn read_all(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            read_all(&path, out);
        } else if !(name.starts_with("LICENSE")
            || name.starts_with("COPYING")
            || name.ends_with(".md")
            || name.ends_with(".json"))
        {
            if let Ok(bytes) = std::fs::read(&path) {
                out.push(bytes);
            }
        }
    }
}

fn bench_set(c: &mut Criterion, name: &str, messages: &[Vec<u8>]) {
    let detector = Detector::builtin();
    let key = FingerprintKey::new([2; 32]);
    let limits = ScanLimits::default();
    let total: usize = messages.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("plan_message");
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            for m in messages {
                std::hint::black_box(plan_message(m, &detector, &key, &limits));
            }
        })
    });
    group.finish();
}

fn scan(c: &mut Criterion) {
    if needs::missing(&[needs::Need::Shared]) {
        return;
    }
    let root = needs::corpus_dir();
    let mut ham = Vec::new();
    read_all(&root.join("public-ham"), &mut ham);
    let mut gift = Vec::new();
    read_all(&root.join("labelled/gift"), &mut gift);
    bench_set(c, "public-ham", &ham);
    bench_set(c, "gift", &gift);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = scan
}
criterion_main!(benches);
