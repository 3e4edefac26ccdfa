//! How the daemon's allocator treats freed memory: kept while output flows,
//! given back when it is over.

/// Lets glibc keep up to 4 MiB of freed memory for reuse instead of handing
/// it back at once. Output is read in chunks of up to 256 KiB that live
/// until their records leave the log buffer; with glibc's defaults each
/// burst mapped, faulted in and unmapped them again, which took about a
/// fifth of the daemon's CPU time while logging 2,000,000 lines (0.335 ->
/// 0.275 s, bench/README.md). 1 MiB thresholds did not help. The cost: up
/// to 4 MiB more resident while output flows, returned by
/// [`give_back`] when it is over; nothing for an idle daemon.
#[allow(unsafe_code)]
pub(crate) fn tune() {
    // SAFETY: mallopt only sets allocator parameters, before any thread
    // is started.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, 4 * 1024 * 1024);
    }
}

/// Hands the memory [`tune`] lets glibc keep back to the system: called
/// when a logging process is stopped, which is when a burst of output is
/// over (its apps are done).
#[allow(unsafe_code)]
pub(crate) fn give_back() {
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
