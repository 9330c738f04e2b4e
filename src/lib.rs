//! shopfleet: a Kubernetes operator that runs one online shop in three AWS
//! regions and keeps them converged.

pub mod api;
pub mod cache;
pub mod clock;
pub mod cloud;
pub mod concern;
pub mod controller;
pub mod failover;
pub mod probe;
#[cfg(feature = "simulation")]
pub mod sim;
#[cfg(feature = "simulation")]
pub mod simulate;
pub mod slots;
pub mod telemetry;
pub mod workload;
