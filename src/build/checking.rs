//! What a shim puts between the program and the heap: nothing, the checking
//! layer (`--checked`, `--checked=guard`), or guarded samples
//! (`--guard-sample N`). One value decides the rendered heap static, the
//! exports' stubs, the toolchain needed and the cache key (docs/checked.md).

use anyhow::{bail, Result};
use clap::ValueEnum;

/// `--checked[=MODE]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckedMode {
    /// Headers, redzones up to the heap's usable size, a quarantine, checks of the heap's answers.
    Redzone,
    /// Each block on pages of its own against an inaccessible page, freed pages inaccessible
    /// (reads past the end and after free fault where they happen); the redzone layout past its limits.
    Guard,
}

/// The rate `--guard-sample` takes without a number (crates/alloc8/src/checked/sampled.rs).
pub const DEFAULT_RATE: u32 = 5000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checking {
    #[default]
    Off,
    Redzone,
    Guard,
    /// One allocation in N on guarded pages; nothing else checked.
    Sample(u32),
}

impl Checking {
    /// From `--checked[=MODE]` and `--guard-sample [N]` (clap keeps them apart).
    pub fn from_flags(checked: Option<CheckedMode>, sample: Option<u32>) -> Result<Checking> {
        Ok(match (checked, sample) {
            (Some(_), Some(_)) => bail!("--guard-sample is a mode of its own (no checking layer): give it or --checked, not both"),
            (Some(CheckedMode::Redzone), None) => Checking::Redzone,
            (Some(CheckedMode::Guard), None) => Checking::Guard,
            (None, Some(0)) => {
                bail!("--guard-sample 0: give how many allocations per guarded one (1 guards every one; the default is {})", DEFAULT_RATE)
            }
            (None, Some(n)) => Checking::Sample(n),
            (None, None) => Checking::Off,
        })
    }

    pub fn is_on(self) -> bool {
        self != Checking::Off
    }

    /// The checking layer with its naked call-site stubs (rustc 1.88).
    pub fn layered(self) -> bool {
        matches!(self, Checking::Redzone | Checking::Guard)
    }

    /// The flag as the user gave it, for messages.
    pub fn flag(self) -> String {
        match self {
            Checking::Off => String::new(),
            Checking::Redzone => "--checked".into(),
            Checking::Guard => "--checked=guard".into(),
            Checking::Sample(n) => format!("--guard-sample {}", n),
        }
    }

    /// Its part of a build's cache key.
    pub fn key(self) -> String {
        match self {
            Checking::Off => String::new(),
            Checking::Redzone => "checked".into(),
            Checking::Guard => "checked-guard".into(),
            Checking::Sample(n) => format!("guard-sample-{}", n),
        }
    }

    /// The shim's heap static and its type, when there is a layer.
    pub fn heap_static(self) -> Option<(String, String)> {
        let (ty, init) = match self {
            Checking::Off => return None,
            Checking::Redzone => ("Checked", "Checked::new(&COUNTING, HEAP_NAME)".to_string()),
            Checking::Guard => ("Checked", "Checked::guarded(&COUNTING, HEAP_NAME)".to_string()),
            Checking::Sample(n) => ("Sampled", format!("Sampled::new(&COUNTING, HEAP_NAME, {})", n)),
        };
        // The heap inside counts itself, if it asks (`COUNTING`: alloc8::observer).
        let ty = format!("alloc8::checked::{}<alloc8::observer::Counting<heap::__Alloc8Heap>>", ty);
        let what = match self {
            Checking::Sample(_) => "one allocation in N goes to guarded pages, every other call straight to the heap",
            _ => "every call reaches the heap through alloc8's checking layer",
        };
        Some((format!("/// `{}`: {}.\nstatic HEAP: {} = alloc8::checked::{};", self.flag(), what, ty, init), ty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_one_mode() {
        assert_eq!(Checking::from_flags(None, None).unwrap(), Checking::Off);
        assert_eq!(Checking::from_flags(Some(CheckedMode::Guard), None).unwrap(), Checking::Guard);
        assert_eq!(Checking::from_flags(None, Some(7)).unwrap(), Checking::Sample(7));
        assert!(Checking::from_flags(Some(CheckedMode::Redzone), Some(7)).unwrap_err().to_string().contains("not both"));
        assert!(Checking::from_flags(None, Some(0)).unwrap_err().to_string().starts_with("--guard-sample 0: "));
        assert!(Checking::Guard.layered() && !Checking::Sample(1).layered());
        let (line, ty) = Checking::Sample(5000).heap_static().unwrap();
        assert_eq!(ty, "alloc8::checked::Sampled<alloc8::observer::Counting<heap::__Alloc8Heap>>");
        assert!(line.ends_with("= alloc8::checked::Sampled::new(&COUNTING, HEAP_NAME, 5000);"), "{}", line);
    }
}
