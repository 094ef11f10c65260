//! deis-backup: scheduled, streamed, verifiable backups of a Deis v1 cluster, and their restore.
//!
//! The binary (`src/main.rs`) only parses the command line; everything it runs lives here so
//! that integration tests and benchmarks can reach the same code.

pub mod commands;
pub mod config;
pub mod daemon;
pub mod docker;
pub mod error_chain;
pub mod etcd;
pub mod gateway;
pub mod io_util;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod restore;
pub mod runtime;
pub mod s3;
pub mod store;
pub mod util;
