//! Support for golat's integration tests: building the Go workloads (`go_build`) and running
//! the real `golat` binary against them on the real kernel (`harness`).
pub mod go_build;
pub mod harness;
