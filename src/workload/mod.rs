//! The regional order workload and its autoscaler.
//!
//! - [`capacity`]: the capacity model (replica bounds from orders per second);
//! - [`topology`]: what the pods read from the topology ConfigMap;
//! - [`builders`]: pure builders of the children of a ShopRegion;
//! - [`diff`]: does a child need an apply (pure);
//! - [`cache`]: the watch caches of the children, as compact JSON;
//! - [`apply`]: the children as observed, the writes they need (pure) and
//!   their server-side apply (thin I/O);
//! - [`status`]: `status.orders` and the `WorkloadReady` condition (pure);
//! - [`concern`]: the workload as a concern of the reconcile pipeline.

pub mod apply;
pub mod builders;
pub mod capacity;
pub mod concern;
pub mod diff;
pub mod status;
pub mod topology;

pub use apply::ApplyReport;
pub use builders::{Children, WorkloadInputs, desired_children};
pub use capacity::{Capacity, plan_capacity};
pub use concern::Workload;
pub use diff::needs_apply;
pub use status::workload_status;
pub use topology::Topology;
