//! Blocking or CPU-heavy work (a scan, a vault write, an fsync) called from
//! async code.

/// Runs `work` in place; on the multi-threaded runtime the worker's other
/// tasks move to other workers meanwhile, so the service keeps answering.
pub fn cpu<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
