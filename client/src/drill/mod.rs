//! Drills: a simulated network of real clients on a local relay, driven by a scenario
//! (`pocnet_core::drill`), and the after-action report built from the signed records.

pub mod network;
pub mod runner;
