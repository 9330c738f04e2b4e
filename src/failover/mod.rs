//! Failover: health signals, the fleet observation, the decision engine and
//! the probes. `docs/failover.md` describes the protocol; this module is its
//! functional core plus the thin probe I/O.
//!
//! - [`health`]: samples → verdicts with hysteresis (pure);
//! - [`observe`]: ShopRegions + AWS global state + verdicts → one
//!   [`FleetObservation`] (pure);
//! - [`decide`]: observation + policy + now → [`Decision`] (pure);
//! - [`ready`]: the `FailoverReady` condition and the Events (pure);
//! - [`probe`]: TCP and HTTP probes behind the [`Probe`] trait (thin I/O).

pub mod decide;
pub mod health;
pub mod observe;
pub mod probe;
pub mod ready;

#[cfg(test)]
mod properties;

pub use decide::{
    AbandonReason, Decision, Promotion, RefuseReason, WaitReason, absorbing, decide, lost_regions,
};
pub use health::{Health, HealthState, Sample, Signal, Thresholds, assess, verdict};
pub use observe::{
    Attempt, FleetObservation, GlobalView, LagSample, ObserveInput, Policy, RegionView,
    WriterTransition, observe,
};
pub use probe::{NetworkProbe, Probe};
pub use ready::{events, failover_ready};
