// Empty library so that probe-user can build-depend on this crate (aya-template layout); the
// programs live in the `golat` binary (src/main.rs).
#![no_std]
