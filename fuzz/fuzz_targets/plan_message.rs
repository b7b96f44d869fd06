//! Any bytes as a message: plan_message must not panic, and its plan must
//! keep the length and stay inside the message.
#![no_main]

use std::sync::OnceLock;

use giftlock::detect::Detector;
use giftlock::mask::{plan_message, FingerprintKey, ScanLimits};
use libfuzzer_sys::fuzz_target;

fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(Detector::builtin)
}

fuzz_target!(|data: &[u8]| {
    let key = FingerprintKey::new([5; 32]);
    let plan = plan_message(data, detector(), &key, &ScanLimits::default());
    let mut end = 0;
    for patch in &plan.patches {
        assert!(patch.offset >= end, "patches sorted and disjoint");
        end = patch.offset + patch.bytes.len();
    }
    assert!(end <= data.len(), "patches inside the message");
    let mut out = data.to_vec();
    plan.apply(&mut out);
    assert_eq!(out.len(), data.len());
});
