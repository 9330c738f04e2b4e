//! Shared by the AWS adapter tests: the moto server harness, and the wire
//! formats of the requests the adapter sends (RDS's form-encoded query,
//! CloudWatch's CBOR).

#![allow(dead_code)]

pub mod moto;
pub mod wire;

use aws_sdk_rds::config::{Credentials, SharedCredentialsProvider};

/// Static dummy credentials: moto accepts any, request capture needs some
/// to sign with. Never the default chain in tests.
pub fn credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "AKIDSHOPFLEETTEST",
        "shopfleet-test-secret",
        None,
        None,
        "shopfleet-tests",
    ))
}
