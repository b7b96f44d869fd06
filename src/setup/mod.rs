//! What `giftlock init` (and later account commands) write: the config
//! file's text ([`render`]), the upstream secret in its store
//! ([`secret_store`]), and private files ([`files`]). The command line in
//! `crate::cli::init` asks the questions and prints the report; the work is
//! here, where it can be tested without a terminal.

pub mod files;
pub mod render;
pub mod secret_store;
