//! The rules a heap is checked against, named once for the in-process checks,
//! the C drivers (which print the ids) and `alloc8 test`'s reports.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A block is not aligned as promised.
    Alignment,
    /// The usable size is below the request, or changed while the block was live.
    UsableSize,
    /// A block overlaps another live block.
    Overlap,
    /// Bytes of a live block changed while the program owned it.
    Contents,
    /// realloc lost part of the old contents.
    ReallocCopy,
    /// calloc returned memory that is not zero.
    CallocZero,
    /// errno not kept or set as the contract says.
    Errno,
    /// An allocation that must succeed returned NULL.
    NullReturn,
    /// A request for 2^48 bytes or more (or an overflowing calloc) did not fail.
    HugeRequest,
    /// The process was killed by a signal.
    Crash,
    /// The process did not finish in its time limit.
    Hang,
    /// A child forked while threads allocated did not finish: a lock was held across fork.
    ForkDeadlock,
    /// A forked child crashed or failed.
    ForkChild,
    /// Freed memory did not come back: resident memory grew without bound.
    MemoryReuse,
    /// The heap's thread hooks did not run once per thread.
    ThreadHooks,
    /// A rule of the contract battery (its own name says which).
    Contract,
}

pub const RULES: [Rule; 16] = [
    Rule::Alignment,
    Rule::UsableSize,
    Rule::Overlap,
    Rule::Contents,
    Rule::ReallocCopy,
    Rule::CallocZero,
    Rule::Errno,
    Rule::NullReturn,
    Rule::HugeRequest,
    Rule::Crash,
    Rule::Hang,
    Rule::ForkDeadlock,
    Rule::ForkChild,
    Rule::MemoryReuse,
    Rule::ThreadHooks,
    Rule::Contract,
];

impl Rule {
    /// The id the C drivers print and JSON carries.
    pub fn id(self) -> &'static str {
        match self {
            Rule::Alignment => "alignment",
            Rule::UsableSize => "usable-size",
            Rule::Overlap => "overlap",
            Rule::Contents => "contents",
            Rule::ReallocCopy => "realloc-copy",
            Rule::CallocZero => "calloc-zero",
            Rule::Errno => "errno",
            Rule::NullReturn => "null-return",
            Rule::HugeRequest => "huge-request",
            Rule::Crash => "crash",
            Rule::Hang => "hang",
            Rule::ForkDeadlock => "fork-deadlock",
            Rule::ForkChild => "fork-child",
            Rule::MemoryReuse => "memory-reuse",
            Rule::ThreadHooks => "thread-hooks",
            Rule::Contract => "contract",
        }
    }

    pub fn from_id(id: &str) -> Option<Rule> {
        RULES.iter().copied().find(|r| r.id() == id)
    }

    /// The rule in words.
    pub fn text(self) -> &'static str {
        match self {
            Rule::Alignment => "every block is aligned as promised: 16 bytes (malloc, calloc, realloc, new; with FUNDAMENTAL_ALIGNMENT the size's largest power of two up to 16), the requested alignment (memalign & co., aligned new), a page (valloc, pvalloc)",
            Rule::UsableSize => "the usable size is at least the size asked for, and stays the same while the block is live",
            Rule::Overlap => "a live block overlaps no other live block, up to its usable size",
            Rule::Contents => "the bytes of a live block, up to its usable size, keep what the program wrote",
            Rule::ReallocCopy => "realloc keeps the old contents up to the smaller of the old and new sizes",
            Rule::CallocZero => "calloc returns zeroed memory, recycled blocks included",
            Rule::Errno => "free keeps errno; a failed allocation sets ENOMEM",
            Rule::NullReturn => "an allocation the machine can serve returns memory, not NULL",
            Rule::HugeRequest => "a request no machine can serve (2^48 bytes and more, an overflowing calloc) fails with NULL",
            Rule::Crash => "the heap does not crash a correct program",
            Rule::Hang => "every call returns: no deadlock, no endless loop",
            Rule::ForkDeadlock => "a child forked while other threads allocate can allocate: no heap lock is held across fork",
            Rule::ForkChild => "a child forked while other threads allocate can allocate, free and exit cleanly",
            Rule::MemoryReuse => "freed memory is reused: resident memory stays bounded while far more than RAM is allocated and freed",
            Rule::ThreadHooks => "with --threads, thread_init and thread_cleanup run once for every thread",
            Rule::Contract => "the malloc and C++ operator contract (glibc's rules)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip() {
        for r in RULES.iter() {
            assert_eq!(Rule::from_id(r.id()), Some(*r));
            assert_eq!(RULES.iter().filter(|x| x.id() == r.id()).count(), 1);
        }
    }
}
