//! poolscope runs a directory of tasks on a pool of OS processes and shows it working.
//!
//! The engine ([`engine`]) loads nothing of any face: it takes a [`taskdir::TaskDir`] and a
//! [`config::PoolConfig`], runs the pool, records the run on disk ([`record`]) and emits
//! [`event::Event`]s that a face folds into a [`state::RunState`].

pub mod bench;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod event;
pub mod guard;
#[cfg(feature = "gui")]
pub mod gui;
pub mod human;
pub mod limits;
pub mod manifest;
pub mod monitor;
pub mod output;
pub mod record;
pub mod state;
pub mod task;
pub mod taskdir;
pub mod template;
pub mod worker;
