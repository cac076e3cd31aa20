//! Tunes glibc's `malloc` for Weir's allocation pattern before any thread
//! starts. An epoch allocates a few buffers of tens of MiB (a landed file's
//! records, the Arrow IPC handed to a plugin, the decoded output) and frees
//! them when it commits; every pipeline of a file runs on its own threads.
//! With glibc's defaults each thread gets its own arena (up to 8 per core),
//! memory freed in one is not reused by another, and buffers above 32 MiB are
//! `mmap`ed and unmapped every epoch, so each epoch faults its buffers in
//! afresh. Measured on the orders benchmark (1M events, 2 cores, three
//! pipelines at once; docs/performance.md): peak RSS 790 → 530 MiB and the
//! run 2.7 → 2.4–2.6 s (system time 1.1 → 0.55 s).
//!
//! The settings are glibc's documented `mallopt` parameters, equal to the
//! `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_`
//! environment variables (which, when set, win: they are read at the first
//! allocation, and these calls are skipped for any that is set). The mmap
//! and trim thresholds are set together: setting either turns off glibc's
//! dynamic adjustment of both. `GLIBC_TUNABLES` settings of the same
//! parameters are overridden.

/// One arena shared by all threads: pipelines reuse each other's freed memory.
const ARENA_MAX: i32 = 1;
/// Blocks below this come from the arena (reused) instead of fresh `mmap`s.
const MMAP_THRESHOLD: i32 = 256 << 20;
/// Free memory at the top of the heap kept for the next epoch, not returned.
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Applies the settings; call first thing in `main`.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (variable, parameter, value) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENA_MAX),
        (
            "MALLOC_MMAP_THRESHOLD_",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
        ),
        (
            "MALLOC_TRIM_THRESHOLD_",
            libc::M_TRIM_THRESHOLD,
            TRIM_THRESHOLD,
        ),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: `mallopt` only changes allocator parameters and is
            // called before any other thread exists.
            let accepted = unsafe { libc::mallopt(parameter, value) } == 1;
            if !accepted {
                // An older glibc caps the mmap threshold at 32 MiB: Weir
                // runs, with more memory faulted in per epoch.
                eprintln!(
                    "weir: this glibc refused mallopt for {variable} = {value}; running with its default"
                );
            }
        }
    }
}
