//! The heap checked in process, from its own `cargo test`, by the rules
//! `alloc8 test` checks on the built library (alloc8::testing): a seeded
//! trace against a shadow model, threads handing blocks to each other, and
//! fork while threads allocate.

use alloc8::testing::{assert_heap, Options};

#[test]
fn mimalloc_keeps_the_contract() {
    let summary = assert_heap(&mimalloc_heap::MiHeap, Options { ops: 20_000, max_size: 256 << 10, ..Options::default() });
    assert_eq!(summary.ops, 20_000);
    assert!(summary.forks > 0);
}
