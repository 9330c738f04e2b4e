//! The regional order workload and its autoscaler.
//!
//! - [`capacity`]: the capacity model (replica bounds from orders per second);
//! - [`topology`]: what the pods read from the topology ConfigMap;
//! - [`builders`]: pure builders of the children of a ShopRegion;
//! - [`diff`]: does a child need an apply (pure);
//! - [`apply`]: server-side apply of the children (thin I/O);
//! - [`status`]: `status.orders` and the `WorkloadReady` condition (pure).
//!
//! The controller calls, in order: `api::validate`, [`plan_capacity`],
//! [`desired_children`], [`apply_children`], [`workload_status`].

pub mod apply;
pub mod builders;
pub mod capacity;
pub mod diff;
pub mod status;
pub mod topology;

pub use apply::{ApplyReport, apply_children};
pub use builders::{Children, WorkloadInputs, desired_children};
pub use capacity::{Capacity, plan_capacity};
pub use diff::needs_apply;
pub use status::workload_status;
pub use topology::Topology;
