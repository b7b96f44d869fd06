//! Rules of the gift-card detector on decoded text: every built-in rule in
//! plain, full-width and look-alike forms, the context that makes or breaks
//! a code, user rules, exact offsets.

use giftlock::detect::{CodeKind, DetectConfig, Detector, Finding, TextContext, TextSource};

/// Built once: building the keyword automaton is the slow part of a test.
static BUILTIN: std::sync::LazyLock<Detector> = std::sync::LazyLock::new(Detector::builtin);

fn plain() -> TextContext<'static> {
    TextContext {
        source: TextSource::Plain,
        sender: None,
        subject: None,
    }
}

fn from(sender: &'static str, subject: &'static str) -> TextContext<'static> {
    TextContext {
        source: TextSource::Plain,
        sender: Some(sender),
        subject: Some(subject),
    }
}

/// The texts of the findings, with their rule names.
fn found(text: &str, ctx: &TextContext<'_>) -> Vec<(String, String)> {
    found_by(&BUILTIN, text, ctx)
}

fn found_by(d: &Detector, text: &str, ctx: &TextContext<'_>) -> Vec<(String, String)> {
    d.scan(text, ctx)
        .into_iter()
        .map(|f: Finding| (text[f.range].to_string(), f.rule.to_string()))
        .collect()
}

fn one(code: &str, rule: &str) -> Vec<(String, String)> {
    vec![(code.to_string(), rule.to_string())]
}

#[test]
fn amazon_labelled_code() {
    let text = "ギフト券番号: JCK2-618O72-O7BZ\n金額: 1,500円";
    assert_eq!(found(text, &plain()), one("JCK2-618O72-O7BZ", "amazon"));
}

// --- The gift mails of the labelled corpus, as decoded text snippets. ---

#[test]
fn corpus_amazon_associates_text_and_redeem_url() {
    let ctx = from(
        "gc-orders@gc.email.amazon.co.jp",
        "Amazonアソシエイトプログラム様からAmazonギフトカードが届きました！",
    );
    let text = "Amazonアソシエイトプログラム様からAmazonギフトカードが届きました！\n\
                Here is your Amazon Associates payment.\n\
                ギフトカード番号：524Y-NG5BY1-A2ROG\n金額：￥3,000\n有効期限：2036年11月24日\n";
    assert_eq!(found(text, &ctx), one("524Y-NG5BY1-A2ROG", "amazon"));
    let url = TextContext {
        source: TextSource::Url,
        ..ctx
    };
    let href = "https://www.amazon.co.jp/gc/redeem?claimCode=524YNG5BY1A2ROG&ref=gc_email";
    assert_eq!(found(href, &url), one("524YNG5BY1A2ROG", "amazon"));
}

#[test]
fn a_code_in_a_percent_encoded_redirect_url() {
    let ctx = TextContext {
        source: TextSource::Url,
        sender: Some("gc-orders@gc.email.amazon.co.jp"),
        subject: None,
    };
    let href = "https://www.amazon.co.jp/gp/r.html?C=1&U=https%3A%2F%2Fwww.amazon.co.jp%2Fgc%2F\
                redeem%3FclaimCode%3D524YNG5BY1A2ROG%26ref%3Dgc_email";
    assert_eq!(found(href, &ctx), one("524YNG5BY1A2ROG", "amazon"));
}

#[test]
fn corpus_amazon_html_table_cells() {
    let ctx = TextContext {
        source: TextSource::Html,
        sender: Some("gc-orders@gc.email.amazon.co.jp"),
        subject: Some("Amazonギフトカードが届きました"),
    };
    let text = "Amazonギフトカードが届きました\n山田 花子様から、Amazonギフトカード ￥5,000 が届きました。\n\
                メッセージ: いつもありがとう！\n  ギフトカード番号\n  GK7Z-X5B4CT-ZKK6\n  有効期限\n  2036/11/24\n";
    assert_eq!(found(text, &ctx), one("GK7Z-X5B4CT-ZKK6", "amazon"));
}

#[test]
fn corpus_amazon_us_claim_code() {
    let ctx = from(
        "gc-orders@gc.email.amazon.com",
        "Jamie sent you an Amazon.com Gift Card!",
    );
    let text = "Hi Alex,\nJamie sent you an Amazon.com Gift Card.\n\
                xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx Claim code: V3BO-L9LF9Q-CEFB2\nRedeem at amazon.com/redeem\n";
    assert_eq!(found(text, &ctx), one("V3BO-L9LF9Q-CEFB2", "amazon"));
}

#[test]
fn corpus_google_play() {
    let ctx = from("googleplay-noreply@google.com", "Google Play ギフトコード");
    let text = "Google Play ギフトコードをお送りします。\nコード: S65B-UZSB-KMUI-V1NR\n\
                play.google.com/redeem で引き換えてください。\n";
    assert_eq!(found(text, &ctx), one("S65B-UZSB-KMUI-V1NR", "google_play"));
}

#[test]
fn corpus_steam_html() {
    let ctx = TextContext {
        source: TextSource::Html,
        sender: Some("noreply@steampowered.com"),
        subject: Some("Your Steam Wallet Code"),
    };
    let text = "Steam Wallet Code\nYour Steam Wallet code is:\n9OFRX-S8H3R-F0HCM\n";
    assert_eq!(found(text, &ctx), one("9OFRX-S8H3R-F0HCM", "steam"));
}

#[test]
fn corpus_nintendo() {
    let ctx = from(
        "no-reply@accounts.nintendo.com",
        "ニンテンドープリペイド番号のお知らせ",
    );
    let text = "ニンテンドープリペイド番号のお知らせ\nプリペイド番号：84WQL8NTMPXFRF2F\n\
                ニンテンドーeショップで番号を入力してください。\n";
    assert_eq!(found(text, &ctx), one("84WQL8NTMPXFRF2F", "nintendo"));
}

#[test]
fn corpus_code_in_quoted_reply() {
    let ctx = from("taro@example.jp", "Re: お小遣い");
    let text = "ありがとう、今夜使います。\n\n2026/11/20 21:03 母 <haha@example.ne.jp>:\n\
                > お小遣いです。\n> ギフト券番号: 8CU9-NLT18K-219Q\n> 大事に使ってね\n";
    assert_eq!(found(text, &ctx), one("8CU9-NLT18K-219Q", "amazon"));
}

#[test]
fn corpus_apple_spaced_and_in_url() {
    let ctx = from(
        "no_reply@email.apple.com",
        "You've received an Apple Gift Card",
    );
    let text = "You've received an Apple Gift Card.\nYour code: XROD E6XK 6NTT T9XK\n";
    assert_eq!(found(text, &ctx), one("XROD E6XK 6NTT T9XK", "apple"));
    let url = TextContext {
        source: TextSource::Url,
        ..ctx
    };
    let href = "https://apps.apple.com/redeem?code=XRODE6XK6NTTT9XK";
    assert_eq!(found(href, &url), one("XRODE6XK6NTTT9XK", "apple"));
}

#[test]
fn corpus_two_codes_in_one_text() {
    let ctx = from("soumu@example.co.jp", "キャンペーン当選のお知らせ");
    let text = "社内キャンペーン当選者の皆様\n\nギフト券番号(1): M72B-J8MRTQ-2K8W\n\
                ギフト券番号(2): 50HN-A8SIE6-XT16W\n\n総務部\n";
    assert_eq!(
        found(text, &ctx),
        vec![
            ("M72B-J8MRTQ-2K8W".to_string(), "amazon".to_string()),
            ("50HN-A8SIE6-XT16W".to_string(), "amazon".to_string()),
        ]
    );
}

// --- The ham of the labelled corpus: look-alikes that are not codes. ---

#[test]
fn corpus_ham_has_no_code() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "auto-confirm@amazon.co.jp",
            "Amazon.co.jpでのご注文",
            "Amazon.co.jpをご利用いただき、ありがとうございます。\n注文番号: 418-7799001-6637315\n\
             商品: USB-C ケーブル (ASIN B0E5PSB0JZ)\nギフトカードの送信先: hanako@example.jp\nお届け予定: 11月26日\n",
        ),
        (
            "billing@example.co.jp",
            "請求書送付のご案内",
            "請求書を送付します。\n適格請求書発行事業者 登録番号: T3541185788024\n\
             請求書番号: INV-97653168\n金額: 12,100円\n",
        ),
        (
            "shop@example.jp",
            "商品発送のお知らせ",
            "発送のお知らせ\nヤマト運輸 お問い合わせ伝票番号: 7565-4940-2897\n国際郵便: EJ871116439JP\n\
             UPS tracking: 1ZNTEGOZU5GLCDBNC5\n",
        ),
        (
            "news@example.jp",
            "冬のセール",
            "冬のセール開催中\nクーポンコード:  WINTER2026SALE  で10%OFF\n\
             商品コード: ABC-123456-XYZ / 型番 KJ-55X9500H\n<img src=\"cid:3f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d.png\">",
        ),
        (
            "ci@example.com",
            "Build failed",
            "Build 062FE258-0D96-5A39-6FAC-F3B2E8F10AF0 failed.\n\
             commit 741c3719b3388474f1de00ad9f1ead058b724ac9\nRequest-Id: 7UX5JN0NGFKABF37\n\
             See https://ci.example.com/runs/ELW79LL0E3GA4XZJXIPY?token=UM78GT2N3JQDKM58MCZW460O\n",
        ),
        (
            "hanako@example.jp",
            "ありがとう",
            "Amazonギフト券ありがとう！さっそく本を買いました。\nギフト券番号の登録もできました。\n",
        ),
    ];
    let d = &*BUILTIN;
    for (sender, subject, text) in cases {
        let ctx = TextContext {
            source: TextSource::Plain,
            sender: Some(sender),
            subject: Some(subject),
        };
        assert_eq!(found_by(d, text, &ctx), vec![], "{text}");
    }
}

// --- Every built-in rule, in plain, full-width and look-alike forms. ---

/// Full-width form of an ASCII code (letters, digits, `-` to `－`, ` ` to `　`).
fn full_width(code: &str) -> String {
    code.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
            ' ' => '\u{3000}',
            _ => c,
        })
        .collect()
}

/// The same code with each `-` replaced by `dash`.
fn dashed(code: &str, dash: char) -> String {
    code.replace('-', &dash.to_string())
}

/// (rule, code, label) for every built-in shape.
const SHAPES: &[(&str, &str, &str)] = &[
    ("amazon", "AQ3X-BN2Y5K-9DXR", "ギフト券番号"),
    ("amazon", "AQ3X-BN2Y5K-9DXR7", "claim code"),
    ("amazon", "AQ3XBN2Y5K9DXR", "ギフトカード番号"),
    ("amazon", "AQ3XBN2Y5K9DXR7", "claimCode="),
    ("apple", "X7KD 9QWM 2LPT 4RZN", "Apple Gift Card code"),
    ("apple", "X7KD-9QWM-2LPT-4RZN", "コード"),
    ("apple", "X7KD9QWM2LPT4RZN", "redeem?code="),
    ("google_play", "S65B-UZSB-KMUI-V1NR", "ギフトコード"),
    (
        "google_play",
        "S65B-UZSB-KMUI-V1NR-7QPA",
        "Google Play code",
    ),
    ("google_play", "S65BUZSBKMUIV1NR7QPA", "ギフトコード"),
    ("steam", "9OFRX-S8H3R-F0HCM", "Steam Wallet code"),
    ("nintendo", "84WQL8NTMPXFRF2F", "ニンテンドープリペイド番号"),
    ("playstation", "M4TQ-8RKD-2NEB", "PlayStation Store code"),
    (
        "xbox",
        "7KQ2M-PX9DR-T4WZH-8NCLB-3VJYF",
        "Xbox gift card code",
    ),
    ("webmoney", "k2m9p4x7q1w8z3n6", "WebMoney プリペイド番号"),
    (
        "prepaid_card",
        "4539 5787 6362 1486",
        "Visa プリペイドカード番号",
    ),
    ("prepaid_card", "4539-5787-6362-1486", "カード番号"),
    ("prepaid_card", "4539578763621486", "card number"),
];

#[test]
fn every_shape_with_its_label_in_every_width() {
    let d = &*BUILTIN;
    for &(rule, code, label) in SHAPES {
        for variant in [
            code.to_string(),
            full_width(code),
            dashed(code, 'ー'),
            dashed(code, '−'),
            dashed(code, '‐'),
            dashed(code, '–'),
            dashed(code, '－'),
        ] {
            let text = format!("こんにちは。\n{label} {variant}\nよろしくお願いします。");
            assert_eq!(found_by(d, &text, &plain()), one(&variant, rule), "{text}");
        }
    }
}

#[test]
fn a_stray_group_next_to_a_spaced_code_is_masked_with_it() {
    let text = "Your code: X123 XROD E6XK 6NTT T9XK";
    assert_eq!(
        found(text, &plain()),
        one("X123 XROD E6XK 6NTT T9XK", "apple")
    );
    let card = "カード番号: 2024 4539 5787 6362 1486";
    assert_eq!(
        found(card, &plain()),
        one("4539 5787 6362 1486", "prepaid_card")
    );
    let two = "Codes: XROD E6XK 6NTT T9XK XABC 1DEF 2GHI 3JKL";
    let got = found(two, &plain());
    let expected = [
        ("XROD E6XK 6NTT T9XK", "apple"),
        ("XABC 1DEF 2GHI 3JKL", "apple"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(c, r)| (c.to_string(), r.to_string()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn labels_after_the_code_count_too() {
    let text = "AQ3X-BN2Y5K-9DXR is your claim code.";
    assert_eq!(found(text, &plain()), one("AQ3X-BN2Y5K-9DXR", "amazon"));
    let bare = "AQ3XBN2Y5K9DXR is your claim code.";
    assert_eq!(
        found(bare, &plain()),
        vec![],
        "a bare run needs a label in front"
    );
}

#[test]
fn bare_runs_need_a_label() {
    let d = &*BUILTIN;
    for (code, sender) in [
        ("AQ3XBN2Y5K9DXR", "gc-orders@gc.email.amazon.co.jp"),
        ("84WQL8NTMPXFRF2F", "no-reply@accounts.nintendo.com"),
        ("k2m9p4x7q1w8z3n6", "info@webmoney.jp"),
        ("S65BUZSBKMUIV1NR7QPA", "googleplay-noreply@google.com"),
        ("4539578763621486", "info@example.com"),
    ] {
        let text = format!("Reference {code} attached.");
        assert_eq!(found_by(d, &text, &plain()), vec![], "{text}");
        let ctx = TextContext {
            source: TextSource::Plain,
            sender: Some(sender),
            subject: Some("Hello"),
        };
        assert_eq!(found_by(d, &text, &ctx), vec![], "{text} from {sender}");
    }
}

#[test]
fn sender_and_subject_vouch_for_a_distinctive_shape() {
    let text = "Enjoy!\n\nAQ3X-BN2Y5K-9DXR\n";
    assert_eq!(found(text, &plain()), vec![], "no context at all");
    let ctx = from("gc-orders@gc.email.amazon.co.jp", "Hello");
    assert_eq!(found(text, &ctx), one("AQ3X-BN2Y5K-9DXR", "amazon"));
    let ctx = from("friend@example.jp", "Amazonギフト券をどうぞ");
    assert_eq!(found(text, &ctx), one("AQ3X-BN2Y5K-9DXR", "amazon"));
    let spoofed = from("gc-orders@amazon.example.com", "Hello");
    assert_eq!(found(text, &spoofed), vec![]);
}

#[test]
fn the_brand_decides_between_rules_of_the_same_shape() {
    let text = "プリペイド番号: 84WQL8NTMPXFRF2F";
    let nintendo = from("no-reply@accounts.nintendo.com", "お知らせ");
    assert_eq!(found(text, &nintendo), one("84WQL8NTMPXFRF2F", "nintendo"));
    let google = from("googleplay-noreply@google.com", "お知らせ");
    assert_eq!(found(text, &google), one("84WQL8NTMPXFRF2F", "google_play"));
}

#[test]
fn every_negative_label_vetoes_a_code() {
    let negatives = [
        "注文番号",
        "ご注文番号",
        "お問い合わせ伝票番号",
        "伝票番号",
        "登録番号",
        "請求書番号",
        "会員番号",
        "クーポンコード",
        "商品コード",
        "型番",
        "Order #",
        "Order number",
        "Tracking",
        "Invoice",
        "ASIN",
        "Promo code",
        "Error code",
        "Confirmation code",
    ];
    let d = &*BUILTIN;
    let ctx = from("gc-orders@gc.email.amazon.co.jp", "Amazonギフトカード");
    for label in negatives {
        for code in ["AQ3X-BN2Y5K-9DXR", "AQ3XBN2Y5K9DXR", "9OFRX-S8H3R-F0HCM"] {
            let text = format!("ギフトカードのご案内\n{label}: {code}\n");
            assert_eq!(found_by(d, &text, &ctx), vec![], "{text}");
            let full = format!("ギフトカードのご案内\n{label}：{}\n", full_width(code));
            assert_eq!(found_by(d, &full, &ctx), vec![], "{full}");
        }
    }
}

#[test]
fn a_positive_label_nearer_than_a_negative_one_wins() {
    let text = "注文番号: 250-1234567-1234567\nギフト券番号: AQ3X-BN2Y5K-9DXR";
    assert_eq!(found(text, &plain()), one("AQ3X-BN2Y5K-9DXR", "amazon"));
}

#[test]
fn look_alikes_without_labels() {
    let text = "Order 250-1234567-1234567, ASIN B0E5PSB0JZ, 登録番号 T3541185788024,\n\
                uuid 062fe258-0d96-5a39-6fac-f3b2e8f10af0 and 062FE258-0D96-5A39-6FAC-F3B2E8F10AF0,\n\
                sha256 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08,\n\
                DKIM b=dGhpcyBpcyBub3QgYSBjb2RlIGF0IGFsbCBqdXN0IGJhc2U2NA==; bh=AQ3XBN2Y5K9DXR+/x=,\n\
                phone 090-1234-5678, date 2026-11-24, XXXX-XXXXXX-XXXX, ABCD-EFGHIJ-KLMN.";
    assert_eq!(found(text, &plain()), vec![]);
}

#[test]
fn identifiers_emails_and_dotted_names_are_not_codes() {
    let text =
        "ギフト券番号: ID_AQ3XBN2Y5K9DXR, AQ3XBN2Y5K9DXR@example.com, host.AQ3XBN2Y5K9DXR.example";
    assert_eq!(found(text, &plain()), vec![]);
}

#[test]
fn gift_mail_without_a_code() {
    let text =
        "Amazonギフト券ありがとう！さっそく本を買いました。\nギフト券番号の登録もできました。";
    let ctx = from("hanako@example.jp", "Amazonギフト券ありがとう");
    assert_eq!(found(text, &ctx), vec![]);
}

#[test]
fn luhn_decides_card_numbers() {
    let valid = "プリペイドカード番号: 4539 5787 6362 1486";
    assert_eq!(
        found(valid, &plain()),
        one("4539 5787 6362 1486", "prepaid_card")
    );
    let invalid = "プリペイドカード番号: 4539 5787 6362 1487";
    assert_eq!(found(invalid, &plain()), vec![]);
}

#[test]
fn a_card_security_code_is_reported_too() {
    let d = &*BUILTIN;
    let text = "Vプリカ カード番号：４５３９－５７８７－６３６２－１４８６\n有効期限：12/29\nセキュリティコード：８３１\n";
    let findings = d.scan(text, &plain());
    let got: Vec<_> = findings
        .iter()
        .map(|f| (&text[f.range.clone()], f.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "４５３９－５７８７－６３６２－１４８６",
                CodeKind::CardNumber
            ),
            ("８３１", CodeKind::SecurityCode),
        ]
    );
    let english = "Virtual card number 4539578763621486 exp 12/29 CVV 831.";
    let got: Vec<_> = d
        .scan(english, &plain())
        .into_iter()
        .map(|f| (&english[f.range], f.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            ("4539578763621486", CodeKind::CardNumber),
            ("831", CodeKind::SecurityCode)
        ]
    );
}

#[test]
fn the_subject_itself_is_scanned() {
    let ctx = TextContext {
        source: TextSource::Header,
        sender: None,
        subject: Some("ギフト券番号 AQ3X-BN2Y5K-9DXR"),
    };
    let text = "ギフト券番号 AQ3X-BN2Y5K-9DXR";
    assert_eq!(found(text, &ctx), one("AQ3X-BN2Y5K-9DXR", "amazon"));
}

#[test]
fn ranges_slice_back_to_the_code_in_the_original_text() {
    let d = &*BUILTIN;
    let code = "ＡＱ３Ｘー\u{200B}ＢＮ２Ｙ５Ｋ－９ＤＸＲ";
    let text = format!("ギフト券番号：　{code}　です");
    let findings = d.scan(&text, &plain());
    assert_eq!(findings.len(), 1);
    assert_eq!(&text[findings[0].range.clone()], code);
    assert_eq!(findings[0].kind, CodeKind::GiftCode);
    assert!(findings[0].score >= 50);
}

// --- User rules from the configuration. ---

/// The `[detect]` table of a configuration file, read the way giftlock
/// reads its configuration (the `config` crate).
fn try_config(toml_text: &str) -> Result<DetectConfig, config::ConfigError> {
    config::Config::builder()
        .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
        .build()?
        .get::<DetectConfig>("detect")
}

fn config(toml_text: &str) -> DetectConfig {
    try_config(toml_text).expect("test config parses")
}

#[test]
fn user_rule_with_keywords() {
    let cfg = config(
        r#"
        [detect]
        disable = ["steam"]
        [[detect.rules]]
        name = "company_voucher"
        pattern = "CV-[0-9A-Z]{8}"
        keywords = ["社内ギフト", "voucher"]
        negative = ["sample"]
        "#,
    );
    let d = Detector::from_config(&cfg).expect("valid config");
    let names: Vec<_> = d.rule_names().collect();
    assert!(names.contains(&"company_voucher") && !names.contains(&"steam"));
    let text = "社内ギフト：ＣＶ－Ａ１Ｂ２Ｃ３Ｄ４ です";
    let got = found_by(&d, text, &plain());
    assert_eq!(got, one("ＣＶ－Ａ１Ｂ２Ｃ３Ｄ４", "company_voucher"));
    assert_eq!(
        found_by(&d, "CV-A1B2C3D4", &plain()),
        vec![],
        "keyword required"
    );
    assert_eq!(
        found_by(&d, "voucher sample: CV-A1B2C3D4", &plain()),
        vec![]
    );
    assert_eq!(
        found_by(&d, "Steam Wallet code: 9OFRX-S8H3R-F0HCM", &plain()),
        vec![]
    );
}

#[test]
fn user_rule_without_keywords_needs_only_its_pattern() {
    let cfg = config(
        r#"
        [detect]
        [[detect.rules]]
        name = "lottery"
        pattern = "LT[0-9]{10}"
        "#,
    );
    let d = Detector::from_config(&cfg).expect("valid config");
    assert_eq!(
        found_by(&d, "当選 LT0123456789 !", &plain()),
        one("LT0123456789", "lottery")
    );
    assert_eq!(
        found_by(&d, "注文番号 LT0123456789", &plain()),
        vec![],
        "negatives still apply"
    );
}

#[test]
fn broken_user_rules_are_clear_errors() {
    let err = |toml_text: &str| {
        Detector::from_config(&config(toml_text))
            .expect_err("config must be refused")
            .to_string()
    };
    let e = err("[detect]\n[[detect.rules]]\nname = \"foo\"\npattern = \"[A-Z\"\n");
    assert!(e.starts_with("rule `foo`: pattern:"), "{e}");
    let e = err("[detect]\ndisable = [\"stean\"]\n");
    assert!(
        e.contains("no built-in rule named `stean`") && e.contains("steam"),
        "{e}"
    );
    let e = err("[detect]\n[[detect.rules]]\nname = \"e\"\npattern = \"A*\"\n");
    assert!(e.contains("rule `e`") && e.contains("empty string"), "{e}");
    let e = err("[detect]\n[[detect.rules]]\nname = \"amazon\"\npattern = \"A+\"\n");
    assert!(e.contains("already used"), "{e}");
    let e = err("[detect]\n[[detect.rules]]\nname = \"k\"\npattern = \"A+\"\nkeywords = [\" \"]\n");
    assert!(e.contains("rule `k`: keywords: keyword 0 is empty"), "{e}");
    let e = err("[detect]\n[[detect.rules]]\nname = \"m\"\npattern = \"A+\"\nmin_score = 1000\n");
    assert!(e.contains("rule `m`: min_score 1000"), "{e}");
    let e = err("[detect]\n[[detect.rules]]\nname = \"Bad Name\"\npattern = \"A+\"\n");
    assert!(e.contains("rule `Bad Name`: name"), "{e}");
    let typo =
        try_config("[detect]\n[[detect.rules]]\nname = \"x\"\npattern = \"A\"\nkeyword = []\n");
    let e = typo
        .expect_err("typos in field names are refused")
        .to_string();
    assert!(e.contains("keyword"), "{e}");
}

#[test]
fn builtin_names_are_stable() {
    let names: Vec<_> = Detector::builtin()
        .rule_names()
        .map(str::to_string)
        .collect();
    assert_eq!(
        names,
        [
            "amazon",
            "apple",
            "google_play",
            "steam",
            "nintendo",
            "playstation",
            "xbox",
            "webmoney",
            "prepaid_card"
        ]
    );
}

#[test]
fn detector_is_shareable() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Detector>();
}

// --- Properties. ---

mod properties {
    use super::*;
    use proptest::prelude::*;

    const UPPER_DIGIT: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const LOWER_DIGIT: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    const DASHES: &[char] = &['-', 'ー', '−', '‐', '–', '－'];

    /// How a code is written: groups, separator, alphabet, and which rules
    /// may claim it (same-shape rules are told apart by context only).
    struct Form {
        groups: &'static [usize],
        spaced: bool,
        alphabet: &'static [u8],
        first: Option<u8>,
        label: &'static str,
        rules: &'static [&'static str],
    }

    const FORMS: &[Form] = &[
        Form {
            groups: &[4, 6, 4],
            spaced: false,
            alphabet: UPPER_DIGIT,
            first: None,
            label: "ギフト券番号",
            rules: &["amazon"],
        },
        Form {
            groups: &[4, 6, 5],
            spaced: false,
            alphabet: UPPER_DIGIT,
            first: None,
            label: "Claim code",
            rules: &["amazon"],
        },
        Form {
            groups: &[15],
            spaced: false,
            alphabet: UPPER_DIGIT,
            first: None,
            label: "claimCode=",
            rules: &["amazon"],
        },
        Form {
            groups: &[4, 4, 4, 4],
            spaced: true,
            alphabet: UPPER_DIGIT,
            first: Some(b'X'),
            label: "Your code:",
            rules: &["apple"],
        },
        Form {
            groups: &[4, 4, 4, 4, 4],
            spaced: false,
            alphabet: UPPER_DIGIT,
            first: None,
            label: "ギフトコード",
            rules: &["google_play"],
        },
        Form {
            groups: &[5, 5, 5],
            spaced: false,
            alphabet: UPPER_DIGIT,
            first: None,
            label: "wallet code",
            rules: &["steam"],
        },
        Form {
            groups: &[16],
            spaced: false,
            alphabet: UPPER_DIGIT,
            first: None,
            label: "プリペイド番号",
            rules: &["nintendo", "apple", "google_play", "webmoney"],
        },
        Form {
            groups: &[4, 4, 4],
            spaced: false,
            alphabet: UPPER_DIGIT,
            first: None,
            label: "PIN",
            rules: &["playstation"],
        },
        Form {
            groups: &[5, 5, 5, 5, 5],
            spaced: false,
            alphabet: UPPER_DIGIT,
            first: None,
            label: "ダウンロード番号",
            rules: &["xbox"],
        },
        Form {
            groups: &[16],
            spaced: false,
            alphabet: LOWER_DIGIT,
            first: None,
            label: "プリペイド番号",
            rules: &["webmoney"],
        },
    ];

    /// A code of `form` from `seed` bytes, with letters, digits and enough
    /// distinct characters to be credible.
    fn make_code(form: &Form, seed: &[u8]) -> Option<Vec<u8>> {
        let len: usize = form.groups.iter().sum();
        let mut code: Vec<u8> = seed
            .iter()
            .take(len)
            .map(|&b| form.alphabet[usize::from(b) % form.alphabet.len()])
            .collect();
        if let (Some(f), Some(c)) = (form.first, code.first_mut()) {
            *c = f;
        }
        let letters = code.iter().any(u8::is_ascii_alphabetic);
        let digits = code.iter().any(u8::is_ascii_digit);
        let hex = code.iter().all(u8::is_ascii_hexdigit);
        let mut distinct = code.clone();
        distinct.sort_unstable();
        distinct.dedup();
        (letters && digits && !hex && distinct.len() * 3 >= len && code.len() == len)
            .then_some(code)
    }

    /// Write `code` in `form`'s grouping, each character in ASCII or
    /// full width as `wide` says, with the dash `dash`.
    fn write_code(form: &Form, code: &[u8], wide: &[bool], dash: char) -> String {
        let mut out = String::new();
        let mut chars = code.iter().zip(wide.iter().cycle());
        for (i, &g) in form.groups.iter().enumerate() {
            if i > 0 {
                out.push(if form.spaced { ' ' } else { dash });
            }
            for (&c, &w) in chars.by_ref().take(g) {
                let c = char::from(c);
                out.push(if w {
                    char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c)
                } else {
                    c
                });
            }
        }
        out
    }

    /// Built-ins plus a user rule that matches often.
    static WITH_USER_RULE: std::sync::LazyLock<Detector> = std::sync::LazyLock::new(|| {
        let cfg = DetectConfig {
            disable: vec![],
            rules: vec![giftlock::detect::UserRule {
                name: "any".into(),
                pattern: "[A-Z]{2}[0-9]{2}".into(),
                keywords: vec![],
                negative: vec![],
                min_score: None,
            }],
        };
        Detector::from_config(&cfg).expect("valid config")
    });

    /// Filler that holds no label and no code: hiragana and punctuation.
    fn filler() -> impl Strategy<Value = String> {
        "[ぁ-ゖ、。！\n ]{0,120}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_labelled_code_is_found_at_its_exact_range(
            form in 0..FORMS.len(),
            seed in proptest::collection::vec(any::<u8>(), 25),
            wide in proptest::collection::vec(any::<bool>(), 1..8),
            dash in proptest::sample::select(DASHES),
            before in filler(),
            after in filler(),
        ) {
            let form = &FORMS[form];
            let Some(code) = make_code(form, &seed) else { return Ok(()) };
            let written = write_code(form, &code, &wide, dash);
            let text = format!("{before}\n{} {written}\n{after}", form.label);
            let start = before.len() + 1 + form.label.len() + 1;
            let findings = BUILTIN.scan(&text, &plain());
            prop_assert_eq!(findings.len(), 1, "{}", text);
            prop_assert_eq!(findings[0].range.clone(), start..start + written.len());
            prop_assert!(form.rules.contains(&&*findings[0].rule), "{} by {}", written, findings[0].rule);
        }

        #[test]
        fn unlabelled_noise_is_not_a_code(
            runs in proptest::collection::vec(("[A-Z0-9]{1,26}", proptest::sample::select(&[" ", "\n", "-", ".", ", ", "-"][..])), 0..300),
        ) {
            let text: String = runs.iter().map(|(r, s)| format!("{r}{s}")).collect();
            let findings = BUILTIN.scan(&text, &plain());
            prop_assert!(findings.is_empty(), "{:?} in {}", findings, text);
        }

        #[test]
        fn any_text_scans_without_panic_into_sorted_disjoint_ranges(
            text in "(\\PC|[A-Z0-9]{4,6}|[-ー－ 　]|ギフト券番号|code|カード番号|セキュリティコード|[0-9]{3,4})*",
        ) {
            let findings = WITH_USER_RULE.scan(&text, &plain());
            let mut last_end = 0;
            for f in &findings {
                prop_assert!(f.range.start >= last_end && f.range.start < f.range.end);
                prop_assert!(text.get(f.range.clone()).is_some(), "range on char boundaries");
                last_end = f.range.end;
            }
        }
    }
}

#[test]
fn a_label_speaks_for_its_own_line_and_value() {
    let d = &*BUILTIN;
    let next_line = "ギフト券番号: AQ3X-BN2Y5K-9DXR\n注文番号: 250-1234567-1234567";
    assert_eq!(
        found_by(d, next_line, &plain()),
        one("AQ3X-BN2Y5K-9DXR", "amazon")
    );
    let same_line = "ギフト券番号: AQ3X-BN2Y5K-9DXR (注文番号)";
    assert_eq!(found_by(d, same_line, &plain()), vec![]);
    let ctx = from("gc-orders@gc.email.amazon.co.jp", "Amazonギフトカード");
    let line_above = "注文番号: 250-1234567-1234567\nAQ3X-BN2Y5K-9DXR";
    assert_eq!(
        found_by(d, line_above, &ctx),
        one("AQ3X-BN2Y5K-9DXR", "amazon")
    );
    let list = "ギフト券番号:\nAQ3X-BN2Y5K-9DXR\nM72B-J8MRTQ-2K8W\n50HN-A8SIE6-XT16W\n";
    assert_eq!(found_by(d, list, &plain()).len(), 3);
}

#[test]
fn a_retyped_lower_case_amazon_code_needs_its_label() {
    let text = "ギフト券番号: aq3x-bn2y5k-9dxr";
    assert_eq!(found(text, &plain()), one("aq3x-bn2y5k-9dxr", "amazon"));
    let ctx = from("friend@example.jp", "Amazonギフトカード");
    assert_eq!(
        found("see well-behaved-list and ab12-cd34ef-gh56", &ctx),
        vec![]
    );
    let upper = "see well-behaved-list and AB12-CD34EF-GH56";
    assert_eq!(found(upper, &ctx), one("AB12-CD34EF-GH56", "amazon"));
}

// --- Robustness: odd and huge inputs. ---

fn assert_sorted_disjoint(text: &str, findings: &[Finding]) {
    let mut last_end = 0;
    for f in findings {
        assert!(f.range.start >= last_end && f.range.start < f.range.end);
        assert!(text.get(f.range.clone()).is_some());
        last_end = f.range.end;
    }
}

#[test]
fn pathological_inputs_scan_to_the_end() {
    let d = &*BUILTIN;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let random_bytes: Vec<u8> = (0..1 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let inputs = [
        "A".repeat(1 << 20),
        "AB12-".repeat(200_000),
        "X1AB CD2E F3GH I4JK ".repeat(10_000),
        "ギフト券番号: AQ3X-BN2Y5K-9DXR\n".repeat(5_000),
        "ＡＢ１２ー－‐\u{200B}　".repeat(50_000),
        "\u{200B}".repeat(300_000),
        String::from_utf8_lossy(&random_bytes).into_owned(),
    ];
    for text in &inputs {
        let ctx = from("gc-orders@gc.email.amazon.co.jp", "Amazonギフトカード");
        let findings = d.scan(text, &ctx);
        assert_sorted_disjoint(text, &findings);
    }
    let many = d.scan(&inputs[3], &plain());
    assert_eq!(many.len(), 5_000, "every repeated code is found");
}
