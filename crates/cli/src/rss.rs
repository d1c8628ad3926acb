//! Peak memory of a process, as the benchmarks and `linli sync` report it.

/// Peak resident memory of this process in MB.
pub(crate) fn peak_rss_mb() -> f64 {
    peak_rss_mb_of(std::process::id())
}

/// Peak resident memory (VmHWM) of a live process in MB; 0 where /proc is not available.
pub(crate) fn peak_rss_mb_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
