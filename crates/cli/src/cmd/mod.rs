//! One module per command, each owning its arguments and what it does.

pub mod audit;
pub mod completions;
pub mod demo;
pub mod login;
pub mod manager;
pub mod measure;
pub mod node;
pub mod slice;
pub mod stats;
pub mod substrate;
pub mod testbed;
pub mod tool;
pub mod types;
pub mod user;
