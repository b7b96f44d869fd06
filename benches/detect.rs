//! Throughput of the gift-code detector on a few MB of mail-like text:
//! English and Japanese ham without codes, and gift mail with codes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use giftlock::detect::{Detector, TextContext, TextSource};
use std::hint::black_box;

/// Deterministic pseudo-random numbers (xorshift), so every run scans the
/// same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn alnum(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len)
            .map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize]))
            .collect()
    }
}

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const HEX: &[u8] = b"0123456789abcdef";

const ENGLISH: &[&str] = &[
    "the",
    "order",
    "shipped",
    "today",
    "and",
    "your",
    "package",
    "will",
    "arrive",
    "on",
    "Thursday.",
    "Thanks",
    "for",
    "shopping",
    "with",
    "us!",
    "Please",
    "review",
    "the",
    "attached",
    "invoice",
    "before",
    "the",
    "meeting.",
    "Build",
    "failed",
    "at",
    "step",
    "3,",
    "see",
    "logs.",
    "We",
    "hope",
    "you",
    "enjoy",
    "your",
    "gift",
    "card",
    "balance",
    "and",
    "the",
    "new",
    "features",
    "of",
    "our",
    "service.",
    "Regards,",
];

const JAPANESE: &[&str] = &[
    "いつもご利用いただき、",
    "ありがとうございます。",
    "ご注文の商品を発送しました。",
    "お届け予定日は",
    "11月26日です。",
    "請求書を添付します。",
    "ご確認ください。",
    "会議は明日の10時からです。",
    "Amazonギフト券ありがとう！",
    "よろしくお願いいたします。",
    "ポイントが付与されました。",
    "本メールは送信専用です。",
];

fn english_ham(rng: &mut Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 200);
    while out.len() < bytes {
        for _ in 0..40 {
            out.push_str(rng.pick(ENGLISH));
            out.push(' ');
        }
        match rng.next() % 6 {
            0 => out.push_str(&format!(
                "Order #{}-{}-{}\n",
                rng.next() % 900 + 100,
                rng.next() % 9_000_000 + 1_000_000,
                rng.next() % 9_000_000 + 1_000_000
            )),
            1 => out.push_str(&format!("commit {}\n", rng.alnum(40, HEX))),
            2 => out.push_str(&format!(
                "https://example.com/runs/{}?token={}\n",
                rng.alnum(20, UPPER),
                rng.alnum(24, UPPER)
            )),
            3 => out.push_str(&format!("Request-Id: {}\n", rng.alnum(16, UPPER))),
            4 => out.push_str("> quoted reply line from an earlier message\n"),
            _ => out.push('\n'),
        }
    }
    out
}

fn japanese_ham(rng: &mut Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 200);
    while out.len() < bytes {
        for _ in 0..12 {
            out.push_str(rng.pick(JAPANESE));
        }
        match rng.next() % 5 {
            0 => out.push_str(&format!(
                "\n注文番号: {}-{}-{}\n",
                rng.next() % 900 + 100,
                rng.next() % 9_000_000 + 1_000_000,
                rng.next() % 9_000_000 + 1_000_000
            )),
            1 => out.push_str(&format!(
                "\nお問い合わせ伝票番号: {}-{}-{}\n",
                rng.next() % 9000 + 1000,
                rng.next() % 9000 + 1000,
                rng.next() % 9000 + 1000
            )),
            2 => out.push_str(&format!(
                "\n登録番号: T{}\n",
                rng.next() % 9_000_000_000_000 + 1_000_000_000_000
            )),
            3 => out.push_str("\n商品: ＵＳＢ－Ｃ ケーブル　（ＡＳＩＮ　Ｂ０Ｅ５ＰＳＢ０ＪＺ）\n"),
            _ => out.push('\n'),
        }
    }
    out
}

fn gift_mail(rng: &mut Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 200);
    while out.len() < bytes {
        out.push_str(&japanese_ham(rng, 1000));
        out.push_str(&format!(
            "\nギフト券番号: {}-{}-{}\n",
            rng.alnum(4, UPPER),
            rng.alnum(6, UPPER),
            rng.alnum(4, UPPER)
        ));
        out.push_str(&english_ham(rng, 1000));
        out.push_str(&format!("\nClaim code: {}\n", rng.alnum(15, UPPER)));
    }
    out
}

fn bench(c: &mut Criterion) {
    let detector = Detector::builtin();
    let ctx = TextContext {
        source: TextSource::Plain,
        sender: Some("someone@example.com"),
        subject: Some("Hello"),
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let size = 4 << 20;
    let inputs = [
        ("english_ham", english_ham(&mut rng, size)),
        ("japanese_ham", japanese_ham(&mut rng, size)),
        ("gift_mail", gift_mail(&mut rng, size)),
    ];
    let mut group = c.benchmark_group("detect");
    for (name, text) in &inputs {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(*name, |b| b.iter(|| detector.scan(black_box(text), &ctx)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
