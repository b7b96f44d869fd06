//! What `giftlock init` and `giftlock account` write: the config file's
//! text ([`render`]), one change to an existing config that keeps every
//! other byte ([`edit`]), the upstream secret in its store
//! ([`secret_store`]), and private files ([`files`]). The command line in
//! `crate::cli::init` and `crate::cli::account` asks the questions and
//! prints the report; the work is here, where it can be tested without a
//! terminal.

pub mod edit;
pub mod files;
pub mod render;
pub mod secret_store;
