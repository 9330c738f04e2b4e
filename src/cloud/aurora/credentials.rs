//! The shop's database master user, kept in a Kubernetes Secret.
//!
//! AWS does not support Secrets Manager-managed master passwords
//! (`ManageMasterUserPassword`) for clusters in an Aurora Global Database,
//! so the operator generates the password, stores it in the Secret named by
//! [`master_secret_name`] *before* the primary's create, and sends it only
//! in that create. Secondaries receive the users through replication; the
//! same credentials work in whichever region is promoted, so the Secret
//! does not change on failover or switchover (`docs/failover.md`).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use ring::rand::{SecureRandom, SystemRandom};

use crate::api::ShopRegionSpec;

use super::names::master_secret_name;
use super::plan::MASTER_USERNAME;
use super::port::MasterPassword;

pub const USERNAME_KEY: &str = "username";
pub const PASSWORD_KEY: &str = "password";

/// Letters and digits only: AWS refuses `/`, `"`, `@` and spaces, and
/// connection strings and shells need no escaping for these.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
const PASSWORD_LENGTH: usize = 40;

/// A new random password (about 232 bits).
pub fn generate_password() -> MasterPassword {
    let random = SystemRandom::new();
    let mut password = String::with_capacity(PASSWORD_LENGTH);
    while password.len() < PASSWORD_LENGTH {
        let mut byte = [0u8; 1];
        random
            .fill(&mut byte)
            .expect("the operating system's random source is available");
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        if usize::from(byte[0]) < limit {
            password.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        }
    }
    MasterPassword::new(password)
}

/// The Secret as the operator creates it. It has no owner: it outlives any
/// one ShopRegion, as the database does under `deletionPolicy: Retain`.
pub fn master_secret(spec: &ShopRegionSpec, namespace: &str, password: &MasterPassword) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(master_secret_name(spec)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "shopfleet".to_string(),
                ),
                ("shopfleet.io/shop".to_string(), spec.shop.clone()),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/basic-auth".to_string()),
        data: Some(BTreeMap::from([
            (
                USERNAME_KEY.to_string(),
                ByteString(MASTER_USERNAME.as_bytes().to_vec()),
            ),
            (
                PASSWORD_KEY.to_string(),
                ByteString(password.expose().as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

/// The password in a master Secret; `None` when the key is missing, empty
/// or not text (the primary is then not created until it is mended).
pub fn master_password_in(secret: &Secret) -> Option<MasterPassword> {
    let bytes = secret.data.as_ref()?.get(PASSWORD_KEY)?;
    let text = std::str::from_utf8(&bytes.0).ok()?;
    (!text.is_empty()).then(|| MasterPassword::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme;

    #[test]
    fn generated_passwords_are_long_differ_and_use_only_characters_aws_accepts() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), PASSWORD_LENGTH);
        assert!(a.expose().bytes().all(|c| ALPHABET.contains(&c)));
    }

    #[test]
    fn the_secret_round_trips_its_password_and_never_prints_it() {
        let spec = acme("us-east-1");
        let password = generate_password();
        let secret = master_secret(&spec, "shop", &password);
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("acme-database-master")
        );
        assert_eq!(master_password_in(&secret), Some(password.clone()));
        assert!(!format!("{password:?}").contains(password.expose()));
    }

    #[test]
    fn an_empty_password_is_not_a_password() {
        let spec = acme("us-east-1");
        let mut secret = master_secret(&spec, "shop", &MasterPassword::new("x"));
        secret
            .data
            .as_mut()
            .unwrap()
            .insert(PASSWORD_KEY.into(), ByteString(Vec::new()));
        assert_eq!(master_password_in(&secret), None);
    }
}
