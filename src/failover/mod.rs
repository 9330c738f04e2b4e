//! Failover: health verdicts, the fleet observation, the decision engine
//! and the protocol's executor (the probes are [`crate::probe`]). `docs/failover.md` describes the protocol; this module is its
//! functional core plus the thin probe I/O.
//!
//! - [`health`]: samples → verdicts with hysteresis (pure);
//! - [`observe`]: ShopRegions + AWS global state + verdicts → one
//!   [`FleetObservation`] (pure);
//! - [`decide`]: observation + policy + now → [`Decision`] (pure);
//! - [`ready`]: the `FailoverReady` condition and the Events (pure);
//! - [`sampler`]: the per-shop task that probes every region on the cloud's
//!   clock and keeps the verdicts in the process (thin I/O);
//! - [`steps`]: the executor's steps planned from AWS's state (pure);
//! - [`execute`]: the executor, through the cloud ports (thin I/O);
//! - [`concern`]: the controller's failover concern: observe → decide →
//!   record → carry out → report.

pub mod concern;
pub mod decide;
pub mod execute;
pub mod health;
pub mod observe;
pub mod ready;
pub mod sampler;
pub mod steps;

#[cfg(test)]
mod properties;

pub use decide::{
    AbandonReason, Decision, Promotion, RefuseReason, WaitReason, absorbing, decide, lost_regions,
    next_change,
};
pub use health::{Health, HealthState, Sample, Thresholds, assess, verdict};
pub use observe::{
    Attempt, FleetObservation, GlobalView, LagSample, ObserveInput, Policy, RegionView,
    WriterTransition, observe,
};
pub use ready::{events, failover_ready};
