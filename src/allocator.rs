//! glibc's malloc, told to give freed memory back to the system.
//!
//! By default glibc serves a large block from `mmap` only until one is
//! freed; then it raises its mmap threshold to that size (and its trim
//! threshold to twice that), so every later argon2 check's 19 MiB comes
//! from a per-thread arena and stays there when freed: up to 8 arenas per
//! core, each keeping about 38 MiB. Measured with 50 imaptest clients
//! logging in and out for 20 s on 2 cores (debug build, one Dovecot, same
//! run; heaptrack: the live heap never passed 53 MB):
//!
//! | allocator | peak | after |
//! | --- | --- | --- |
//! | glibc, defaults | 593-656 MB | 440-607 MB |
//! | glibc, `MALLOC_ARENA_MAX=2` | 514 MB | 405 MB |
//! | mimalloc 0.1.52 as global allocator | 508-552 MB | 491-540 MB |
//! | glibc, 1 MiB mmap threshold | 111 MB | 71 MB |
//! | glibc, 1 MiB mmap threshold, 2 arenas | 109 MB | 62 MB |
//!
//! So glibc stays, with [`tune`]'s settings (and a trim threshold, for
//! speed: `TRIM_THRESHOLD`), and [`release_free`] hands
//! the arenas' free pages back when the service goes idle.

/// Blocks this large or larger are mapped and unmapped each time (an
/// argon2 check's memory, a large literal): a page-fault pass, no copy.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;

/// Free memory at the top of an arena kept for the next allocations
/// rather than given back at once (glibc's default is 128 KiB once the mmap
/// threshold is set): a first fetch allocates and frees a message's worth
/// of buffers (the copy, decoded parts, views) per message, and giving
/// each back made every message fault its pages in again. At most this
/// much per arena stays; [`release_free`] gives it back when idle.
/// Measured on 2 cores, first fetch of 2,000 messages (138 MB) on the
/// plain path, median of 3, same run: 244 MB/s with 128 KiB, 268 MB/s
/// with 16 MiB, 4 MiB as good as 16.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 4 * 1024 * 1024;

/// Arenas in all: threads share them instead of each keeping its own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

/// Sets the thresholds; call first thing in `main`, before any thread.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    // SAFETY: mallopt only sets malloc's parameters, and is called before
    // any other thread exists. A refusal (0) leaves the defaults.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Gives the free pages of every arena back to the system (a few
/// milliseconds; called when the last session ended).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free() {
    // SAFETY: malloc_trim takes malloc's own locks; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free() {}
