//! The subcommands of the `giftlock` binary: each module holds one command's
//! arguments (clap) and its `run`. `src/main.rs` only dispatches.

pub mod audit;
pub mod cert;
pub mod check;
pub mod generate;
pub mod init;
mod mobileconfig;
pub mod passwd;
pub mod providers;
pub mod scan;
pub mod serve;
pub mod service;
