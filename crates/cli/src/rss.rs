//! Peak memory and CPU time of a process, as the benchmarks and `linli sync` report them.

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

/// CPU time this process has used so far (every thread's, those that ended included), in ms;
/// 0 where the clock is not available.
pub(crate) fn cpu_ms() -> f64 {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        t.tv_sec as f64 * 1000.0 + t.tv_nsec as f64 / 1e6
    }
    #[cfg(not(unix))]
    {
        0.0
    }
}

/// CPU time the threads of a live process have used so far, in ms (`/proc/PID/task/*/schedstat`:
/// threads that ended are not counted); 0 where /proc is not available.
pub(crate) fn threads_cpu_ms_of(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e6
}

/// `x` rounded to one decimal, as the reports print figures.
pub(crate) fn tenths(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
