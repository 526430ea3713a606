pub mod go_build;
