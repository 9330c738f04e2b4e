//! The simulated world: virtual time and a simulated AWS. A product
//! feature (`--cloud simulated`, `shopfleet simulate`), not only a test
//! double: deterministic, offline, with fault injection.

pub mod clock;
pub mod cloud;
pub mod control;
pub mod live;
pub mod probe;

pub use clock::VirtualClock;
pub use cloud::{CallRecord, CallTally, Fault, Op, SimAccount, SimCloud, SimDurations, SimNetwork};
pub use live::LiveSim;
pub use probe::SimProbe;
