//! The machine the numbers come from: processor, cores, kernel, C library,
//! the date, and the load before and after the runs (a busy machine's times
//! are not an idle machine's: the output says so).

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
    /// 1, 5 and 15 minute load averages.
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
}

/// A 1-minute load average above this (runnable processes beyond ours) is a busy machine.
const BUSY_LOAD: f64 = 0.5;

impl Machine {
    pub fn now() -> Machine {
        Machine {
            date: utc_date(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)),
            cpu: cpu_model().unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            os: os(),
            libc: libc_version(),
            load_before: load(),
            load_after: None,
        }
    }

    pub fn finished(&mut self) {
        self.load_after = load();
    }

    /// One line: "2026-12-02 10:15 UTC; AMD EPYC, 2 cores; Linux 6.1.0 x86_64, glibc 2.36; load 0.10 before, 0.95 after".
    pub fn note(&self) -> String {
        let mut s = format!("{}; {}, {} cores; {}, {}", self.date, self.cpu, self.cores, self.os, self.libc);
        if let Some(before) = self.load_before {
            s.push_str(&format!("; load {:.2} before", before[0]));
            if let Some(after) = self.load_after {
                s.push_str(&format!(", {:.2} after", after[0]));
            }
        }
        s
    }

    pub fn busy(&self) -> Option<String> {
        let worst = [self.load_before, self.load_after].iter().flatten().map(|l| l[0]).fold(0.0, f64::max);
        (worst > BUSY_LOAD).then(|| {
            format!(
                "the machine was not idle (load average up to {:.2} on {} cores): other processes took turns with the workloads, \
                 so times vary from run to run; for numbers to publish, run on an idle machine",
                worst, self.cores
            )
        })
    }
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
    fn busy_when_loaded() {
        let mut m = Machine::now();
        m.load_before = Some([0.1, 0.1, 0.1]);
        m.load_after = Some([0.2, 0.1, 0.1]);
        assert!(m.busy().is_none());
        m.load_after = Some([1.7, 0.1, 0.1]);
        assert!(m.busy().unwrap().contains("1.70 on"));
        assert!(m.note().contains("load 0.10 before, 1.70 after"), "{}", m.note());
    }
}
