//! Process figures from /proc: resident memory and CPU time.

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// User + system CPU time of `pid` in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU used by a set of processes over a window, as a fraction of one core.
pub struct CpuMeter {
    start: Vec<(u32, f64)>,
    since: std::time::Instant,
}

impl CpuMeter {
    /// Starts measuring `pids` (processes that cannot be read are left out).
    pub fn start(pids: &[u32]) -> CpuMeter {
        CpuMeter {
            start: pids
                .iter()
                .filter_map(|&p| cpu_seconds(p).map(|c| (p, c)))
                .collect(),
            since: std::time::Instant::now(),
        }
    }

    /// CPU seconds per wall second since [`CpuMeter::start`]; `None` when no
    /// process could be read.
    pub fn fraction(&self) -> Option<f64> {
        self.used().map(|(cpu, wall)| cpu / wall.max(1e-3))
    }

    /// CPU seconds used and wall seconds passed since [`CpuMeter::start`];
    /// `None` when no process could be read.
    pub fn used(&self) -> Option<(f64, f64)> {
        if self.start.is_empty() {
            return None;
        }
        let used: f64 = self
            .start
            .iter()
            .map(|&(p, c0)| cpu_seconds(p).map_or(0.0, |c| c - c0))
            .sum();
        Some((used, self.since.elapsed().as_secs_f64()))
    }
}
