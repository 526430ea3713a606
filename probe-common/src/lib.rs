//! Shared between the eBPF programs (`probe-ebpf`) and user space (`probe-user`).
//!
//! Everything here is `#[repr(C)]` without implicit padding (explicit `_pad` fields), with a
//! compile-time size check, because the kernel and user space read the same bytes.
#![no_std]

pub mod hist;
pub mod names;
pub mod types;

pub use hist::{bucket_index, bucket_lower_bound, bucket_upper_bound, NUM_BUCKETS, SUB_BITS};
pub use types::*;
