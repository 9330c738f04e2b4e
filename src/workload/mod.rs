//! The regional order workload and its autoscaler.

pub mod builders;
pub mod capacity;
pub mod diff;
pub mod status;
pub mod topology;
