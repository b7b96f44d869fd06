//! Every fetch form through giftlock against a real Dovecot loaded with the
//! labelled corpus and the masking fixtures: each form agrees with the
//! single masked view (BODY.PEEK[] through giftlock) at the same offsets, no
//! labelled code survives in any of them, sizes and structures equal
//! Dovecot's, and ham is byte-identical. The checks live in
//! integration/clients/mask_fetch.py (its docstring lists them).

mod common;
mod mask_support;
mod needs;

use mask_support::*;
use needs::Need;

#[test]
fn every_fetch_form_agrees_with_the_single_masked_view() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let (bench, setup) = corpus_bench();
    let run = mask_script(&bench, &setup, "mask_fetch.py", &[]);
    let report = assert_driver_passed(&run, "mask_fetch.py");
    let messages = labelled_messages().len() as u64;
    assert_eq!(report["messages"], messages, "{report}");
    assert_eq!(report["gift"], 14, "{report}");
    assert_eq!(report["ham"], 7, "{report}");
    assert_no_code_in(&giftlock_and_client_dirs(&bench));
    bench.assert_no_secrets_logged();
}
