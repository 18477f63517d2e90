//! The machine the numbers come from: processor, cores, kernel, C library,
//! the date, the load average before the runs, and how much of the machine
//! other processes used while they went on (a busy machine's times are not an
//! idle machine's: the output says so). The load average cannot tell the
//! latter: the workloads' own threads count in it.

use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// UTC, to the minute.
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub os: String,
    pub libc: String,
    /// 1, 5 and 15 minute load averages when the runs started.
    pub load_before: Option<[f64; 3]>,
    /// The share of all cores' time, while the runs went on, that went to
    /// processes other than the workloads (and to the hypervisor's other guests).
    pub others_cpu: Option<f64>,
    #[serde(skip)]
    cpu_at_start: Option<CpuTime>,
    #[serde(skip)]
    started: std::time::Instant,
}

/// Others using more than this share of the machine make it a busy one.
const BUSY_SHARE: f64 = 0.10;

/// Busy and total time of all cores so far, in seconds (/proc/stat).
#[derive(Debug, Clone, Copy)]
struct CpuTime {
    busy: f64,
}

impl CpuTime {
    fn now() -> Option<CpuTime> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<f64> = text.lines().next()?.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum();
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Some(CpuTime { busy: busy / if hz > 0 { hz as f64 } else { 100.0 } })
    }
}

impl Machine {
    pub fn now() -> Machine {
        Machine {
            date: utc_date(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)),
            cpu: cpu_model().unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            os: os(),
            libc: libc_version(),
            load_before: load(),
            others_cpu: None,
            cpu_at_start: CpuTime::now(),
            started: std::time::Instant::now(),
        }
    }

    /// At the end of the runs; `ours` is the CPU time the workloads used, in seconds.
    pub fn finished(&mut self, ours: f64) {
        let wall = self.started.elapsed().as_secs_f64();
        if let (Some(start), Some(end)) = (self.cpu_at_start, CpuTime::now()) {
            if wall > 0.0 {
                self.others_cpu = Some(others_share(end.busy - start.busy, ours, wall, self.cores));
            }
        }
    }

    /// One line: "2026-12-02 10:15 UTC; AMD EPYC, 2 cores; Linux 6.1.0 x86_64, glibc 2.36; load 0.10; others used 3% of the cores".
    pub fn note(&self) -> String {
        let mut s = format!("{}; {}, {} cores; {}, {}", self.date, self.cpu, self.cores, self.os, self.libc);
        if let Some(load) = self.load_before {
            s.push_str(&format!("; load {:.2} at start", load[0]));
        }
        if let Some(share) = self.others_cpu {
            s.push_str(&format!("; other processes used {:.0}% of the cores meanwhile", share * 100.0));
        }
        s
    }

    pub fn busy(&self) -> Option<String> {
        let share = self.others_cpu?;
        (share > BUSY_SHARE).then(|| {
            format!(
                "the machine was not idle: other processes used {:.0}% of its {} cores while the workloads ran, and took turns with them, \
                 so times vary from run to run (threaded workloads most); for numbers to publish, run on an idle machine",
                share * 100.0,
                self.cores
            )
        })
    }
}

/// The share of `cores` x `wall` seconds that was busy with anything but `ours`.
fn others_share(busy: f64, ours: f64, wall: f64, cores: usize) -> f64 {
    ((busy - ours) / (wall * cores as f64)).clamp(0.0, 1.0)
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn load() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn os() -> String {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return std::env::consts::OS.to_string();
    }
    let field = |f: &[libc::c_char]| unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned();
    format!("{} {} {}", field(&u.sysname), field(&u.release), field(&u.machine))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn libc_version() -> String {
    let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    format!("glibc {}", v.to_string_lossy())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn libc_version() -> String {
    "not glibc".to_string()
}

/// "YYYY-MM-DD HH:MM UTC" from seconds since the epoch (the civil calendar
/// from a day count, as in Howard Hinnant's date algorithms).
fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", year, month, day, hh, mm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn busy_when_others_take_the_cores() {
        // 10 s on 2 cores: 20 core-seconds; 15 busy, 12 of them ours.
        assert!((others_share(15.0, 12.0, 10.0, 2) - 0.15).abs() < 1e-9);
        assert_eq!(others_share(11.0, 12.0, 10.0, 2), 0.0, "tick rounding never goes below 0");
        let mut m = Machine::now();
        m.load_before = Some([0.1, 0.1, 0.1]);
        m.others_cpu = Some(0.05);
        assert!(m.busy().is_none());
        m.others_cpu = Some(0.63);
        assert!(m.busy().unwrap().contains("used 63% of its"));
        assert!(m.note().contains("load 0.10 at start; other processes used 63% of the cores"), "{}", m.note());
    }

    #[test]
    fn cpu_time_is_read() {
        assert!(CpuTime::now().is_some_and(|t| t.busy > 0.0));
    }
}
