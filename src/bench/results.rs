//! Everything a finished bench knows, in one place for the table, the JSON
//! and CSV files and the plot: the machine, the settings, who and what was
//! timed, every run, the cells, and the warnings a reader needs.

use super::contenders::Contender;
use super::machine::Machine;
use super::measure::Record;
use super::summary::{Cell, WIDE_SPREAD};
use serde::Serialize;

/// The noisy cells a warning names; the rest are counted.
const WIDEST_NAMED: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub rounds: usize,
    pub quick: bool,
    pub threads: usize,
    pub timeout_s: u64,
    /// The hidden size factor, when it is not 1 (tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkloadInfo {
    pub name: String,
    pub stresses: String,
    /// The command line, when it ran.
    pub command: Option<String>,
    /// Why it did not run.
    pub skipped: Option<String>,
}

pub struct Results {
    pub machine: Machine,
    pub settings: Settings,
    pub contenders: Vec<Contender>,
    pub workloads: Vec<WorkloadInfo>,
    pub records: Vec<Record>,
    pub cells: Vec<Cell>,
}

impl Results {
    pub fn cell(&self, workload: usize, contender: usize) -> Option<&Cell> {
        self.cells.iter().find(|c| c.workload == workload && c.contender == contender)
    }

    /// The workloads that ran (have cells), in order.
    pub fn ran(&self) -> Vec<usize> {
        (0..self.workloads.len()).filter(|&w| self.workloads[w].skipped.is_none()).collect()
    }

    pub fn any_failed(&self) -> bool {
        self.cells.iter().any(|c| c.failed.is_some())
    }

    /// What a reader must know before trusting the numbers.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(busy) = self.machine.busy() {
            out.push(busy);
        }
        if self.settings.rounds == 1 {
            out.push(
                "one round per contender: no spread was measured and every ratio is a single run; \
                 without --quick (5 rounds) the table gives medians and flags noisy cells"
                    .into(),
            );
        }
        let mut wide: Vec<&Cell> = self.cells.iter().filter(|c| c.wide()).collect();
        if !wide.is_empty() {
            wide.sort_by(|a, b| b.spread.partial_cmp(&a.spread).unwrap());
            let named: Vec<String> = wide
                .iter()
                .take(WIDEST_NAMED)
                .map(|c| {
                    format!(
                        "{} under {} ({:.0}%)",
                        self.workloads[c.workload].name,
                        self.contenders[c.contender].name,
                        c.spread.unwrap_or(0.0) * 100.0
                    )
                })
                .collect();
            out.push(format!(
                "spread over {:.0}% (slowest minus fastest round, of the median) in {} of {} cells, marked ~{}: {}; \
                 a ratio there is only as good as that spread (more --rounds, an idle machine)",
                WIDE_SPREAD * 100.0,
                wide.len(),
                self.cells.len(),
                if wide.len() > WIDEST_NAMED { "; the widest" } else { "" },
                named.join(", ")
            ));
        }
        out
    }
}
