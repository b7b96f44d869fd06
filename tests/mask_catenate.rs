//! The CATENATE leak stays closed: a client that sees where a masked code
//! sits cannot have the server copy it into a new message by URL
//! (`APPEND ... CATENATE (URL ".../;SECTION=TEXT/;PARTIAL=o.l")`, imaptest's
//! form), in any of its spellings. The probe is run against Dovecot
//! directly too, where it does copy the code: without giftlock's refusal
//! it is a real leak. Steps in integration/clients/mask_catenate.py.

mod common;
mod mask_support;
mod needs;

use mask_support::*;
use needs::Need;

#[test]
fn catenate_cannot_copy_a_masked_code_into_a_new_message() {
    if needs::missing(&[Need::Dovecot, Need::Shared]) {
        return;
    }
    let (bench, setup) = corpus_bench();
    let run = mask_script(&bench, &setup, "mask_catenate.py", &[]);
    let report = assert_driver_passed(&run, "mask_catenate.py");
    assert!(report["probed"].as_u64().unwrap_or(0) >= 5, "{report}");
    assert!(
        report["copied_directly"].as_u64().unwrap_or(0) >= 5,
        "{report}"
    );
    assert_no_code_in(&giftlock_and_client_dirs(&bench));
    bench.assert_no_secrets_logged();
}
