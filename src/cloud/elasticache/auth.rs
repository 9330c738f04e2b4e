//! The Redis AUTH token, from the Secret that `spec.cache.authSecretRef`
//! names to the request that creates a replication group.
//!
//! The controller reads the Secret (the only I/O); [`auth_from_secret`]
//! decides, purely, whether its value can be used. Messages name the
//! Secret and the key, never the value.

use k8s_openapi::api::core::v1::Secret;

use sha2::{Digest, Sha256};

use crate::api::{AuthTokenStatus, SecretKeyRef};

use super::port::{AuthToken, AuthTokenUpdateStrategy};

/// Condition reasons while the token cannot be used. None is terminal: the
/// Secret is not part of the spec, and the user may create or fix it at any
/// time.
pub mod reason {
    pub const AUTH_SECRET_MISSING: &str = "AuthSecretMissing";
    pub const AUTH_SECRET_KEY_MISSING: &str = "AuthSecretKeyMissing";
    pub const AUTH_TOKEN_INVALID: &str = "AuthTokenInvalid";
    pub const ROTATING_AUTH_TOKEN: &str = "RotatingAuthToken";
}

/// What the cache concern knows about Redis AUTH for this region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheAuth {
    /// `spec.cache.authSecretRef` is not set: no AUTH.
    Disabled,
    Token(AuthToken),
    /// AUTH is asked for but the token cannot be used yet.
    Unavailable {
        reason: &'static str,
        message: String,
    },
}

impl CacheAuth {
    pub fn requested(&self) -> bool {
        !matches!(self, CacheAuth::Disabled)
    }
}

/// The token in `secret` under `reference.key`, checked against AWS's rules
/// for AUTH tokens. `secret` is `None` when it does not exist.
pub fn auth_from_secret(
    reference: &SecretKeyRef,
    namespace: &str,
    secret: Option<&Secret>,
) -> CacheAuth {
    let name = format!("{namespace}/{}", reference.name);
    let Some(secret) = secret else {
        return CacheAuth::Unavailable {
            reason: reason::AUTH_SECRET_MISSING,
            message: format!(
                "Secret {name} named by spec.cache.authSecretRef does not exist; create it with the Redis AUTH token under key {:?}",
                reference.key
            ),
        };
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .map(|b| b.0.clone());
    let Some(bytes) = bytes else {
        return CacheAuth::Unavailable {
            reason: reason::AUTH_SECRET_KEY_MISSING,
            message: format!(
                "Secret {name} has no key {:?} (spec.cache.authSecretRef.key)",
                reference.key
            ),
        };
    };
    let Ok(token) = String::from_utf8(bytes) else {
        return invalid(&name, &reference.key, "it is not text");
    };
    match check_auth_token(&token) {
        Ok(()) => CacheAuth::Token(AuthToken::new(token)),
        Err(why) => invalid(&name, &reference.key, why),
    }
}

fn invalid(name: &str, key: &str, why: &str) -> CacheAuth {
    CacheAuth::Unavailable {
        reason: reason::AUTH_TOKEN_INVALID,
        message: format!("the Redis AUTH token in Secret {name} key {key:?} cannot be used: {why}"),
    }
}

/// AWS's rules for an AUTH token: 16 to 128 printable ASCII characters,
/// the only special characters `!&#$^<>-`. The reason never quotes the token.
pub fn check_auth_token(token: &str) -> Result<(), &'static str> {
    if !(16..=128).contains(&token.len()) {
        return Err("it must be 16 to 128 characters long");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!&#$^<>-".contains(c);
    if !token.chars().all(allowed) {
        return Err(
            "it may contain only letters, digits and the special characters ! & # $ ^ < > -",
        );
    }
    Ok(())
}

/// A token's fingerprint for status and pod templates: 16 hex digits of
/// SHA-256 over the replication group's identifier and the token. Never the
/// token; the salt keeps one token's fingerprint from matching across
/// groups. AWS requires tokens of 16 characters or more, which keeps a
/// fingerprint from being guessed back.
pub fn fingerprint(replication_group_id: &str, token: &AuthToken) -> String {
    let mut hash = Sha256::new();
    hash.update(b"shopfleet-redis-auth\0");
    hash.update(replication_group_id.as_bytes());
    hash.update(b"\0");
    hash.update(token.expose().as_bytes());
    hex::encode(&hash.finalize()[..8])
}

/// Where a rotation stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The group accepts the Secret's token alone (or the group was just
    /// seen for the first time, created with it or adopted).
    Settled(AuthTokenStatus),
    /// `ModifyReplicationGroup` with `call` brings the group to `then`.
    Call {
        call: AuthTokenUpdateStrategy,
        then: AuthTokenStatus,
    },
    /// Both tokens are accepted; the order pods are still rolling out to the
    /// new one, and the old one stays until they all run with it.
    WaitingForPods(AuthTokenStatus),
}

/// Pure: the rotation step for the Secret's token `desired` (a fingerprint),
/// given what status recorded and the token every order pod runs with
/// (`rolled`). A token changed again mid-rotation is rotated in at once:
/// AWS keeps at most two, dropping the oldest, and the pods only ever run
/// the newest.
pub fn next_rotation(
    desired: &str,
    recorded: Option<&AuthTokenStatus>,
    rolled: Option<&str>,
) -> Rotation {
    let Some(recorded) = recorded.filter(|r| r.applied.is_some() || r.rotating_to.is_some()) else {
        return Rotation::Settled(AuthTokenStatus {
            applied: Some(desired.to_string()),
            rotating_to: None,
        });
    };
    match recorded.rotating_to.as_deref() {
        Some(rotating) if rotating == desired && rolled == Some(desired) => Rotation::Call {
            call: AuthTokenUpdateStrategy::Set,
            then: AuthTokenStatus {
                applied: Some(desired.to_string()),
                rotating_to: None,
            },
        },
        Some(rotating) if rotating == desired => Rotation::WaitingForPods(recorded.clone()),
        None if recorded.applied.as_deref() == Some(desired) => Rotation::Settled(recorded.clone()),
        _ => Rotation::Call {
            call: AuthTokenUpdateStrategy::Rotate,
            then: AuthTokenStatus {
                applied: recorded.applied.clone(),
                rotating_to: Some(desired.to_string()),
            },
        },
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;

    fn state(applied: Option<&str>, rotating_to: Option<&str>) -> AuthTokenStatus {
        AuthTokenStatus {
            applied: applied.map(Into::into),
            rotating_to: rotating_to.map(Into::into),
        }
    }

    #[test]
    fn a_group_seen_first_is_recorded_with_the_secrets_token_and_no_call() {
        assert_eq!(
            next_rotation("aa", None, None),
            Rotation::Settled(state(Some("aa"), None))
        );
    }

    #[test]
    fn a_changed_secret_rotates_then_waits_for_the_pods_then_sets() {
        let settled = state(Some("aa"), None);
        assert_eq!(
            next_rotation("bb", Some(&settled), Some("aa")),
            Rotation::Call {
                call: AuthTokenUpdateStrategy::Rotate,
                then: state(Some("aa"), Some("bb"))
            }
        );
        let rotating = state(Some("aa"), Some("bb"));
        assert_eq!(
            next_rotation("bb", Some(&rotating), Some("aa")),
            Rotation::WaitingForPods(rotating.clone()),
            "the old token stays while pods still use it"
        );
        assert_eq!(
            next_rotation("bb", Some(&rotating), Some("bb")),
            Rotation::Call {
                call: AuthTokenUpdateStrategy::Set,
                then: state(Some("bb"), None)
            }
        );
        assert_eq!(
            next_rotation("bb", Some(&state(Some("bb"), None)), Some("bb")),
            Rotation::Settled(state(Some("bb"), None))
        );
    }

    #[test]
    fn a_token_changed_again_mid_rotation_is_rotated_in_at_once() {
        assert_eq!(
            next_rotation("cc", Some(&state(Some("aa"), Some("bb"))), Some("bb")),
            Rotation::Call {
                call: AuthTokenUpdateStrategy::Rotate,
                then: state(Some("aa"), Some("cc"))
            }
        );
    }

    #[test]
    fn fingerprints_depend_on_token_and_group_and_never_contain_the_token() {
        let token = AuthToken::new("correct-horse-battery-staple");
        let a = fingerprint("acme-us-east-1", &token);
        assert_eq!(a.len(), 16);
        assert_eq!(a, fingerprint("acme-us-east-1", &token));
        assert_ne!(a, fingerprint("acme-eu-west-1", &token));
        assert_ne!(
            a,
            fingerprint(
                "acme-us-east-1",
                &AuthToken::new("correct-horse-battery-stable")
            )
        );
        assert!(!a.contains("horse"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    const TOKEN: &str = "s3cret-Token-0123456789";

    fn reference() -> SecretKeyRef {
        SecretKeyRef {
            name: "acme-redis-auth".into(),
            key: "token".into(),
        }
    }

    fn secret(key: &str, value: &[u8]) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(value.to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn a_valid_token_is_read_from_its_key() {
        assert_eq!(
            auth_from_secret(
                &reference(),
                "shop",
                Some(&secret("token", TOKEN.as_bytes()))
            ),
            CacheAuth::Token(AuthToken::new(TOKEN))
        );
    }

    #[test]
    fn a_missing_secret_is_named_with_its_key() {
        let CacheAuth::Unavailable { reason, message } =
            auth_from_secret(&reference(), "shop", None)
        else {
            panic!("expected unavailable");
        };
        assert_eq!(reason, reason::AUTH_SECRET_MISSING);
        assert!(message.contains("shop/acme-redis-auth"), "{message}");
        assert!(message.contains("\"token\""), "{message}");
    }

    #[test]
    fn a_missing_key_is_reported() {
        let auth = auth_from_secret(&reference(), "shop", Some(&secret("password", b"x")));
        assert!(matches!(
            auth,
            CacheAuth::Unavailable {
                reason: reason::AUTH_SECRET_KEY_MISSING,
                ..
            }
        ));
    }

    #[test]
    fn tokens_aws_would_refuse_are_reported_without_their_value() {
        for bad in [
            "short-1234".as_bytes(),
            "has a space in it 123".as_bytes(),
            "has/a/slash/in/it/123".as_bytes(),
            &[0xff, 0xfe, 0x00, 0x41][..],
        ] {
            let CacheAuth::Unavailable { reason, message } =
                auth_from_secret(&reference(), "shop", Some(&secret("token", bad)))
            else {
                panic!("{bad:?} should be refused");
            };
            assert_eq!(reason, reason::AUTH_TOKEN_INVALID);
            let text = String::from_utf8_lossy(bad);
            assert!(!message.contains(text.as_ref()), "{message}");
        }
        assert_eq!(check_auth_token(&"a".repeat(128)), Ok(()));
        assert!(check_auth_token(&"a".repeat(129)).is_err());
        assert_eq!(check_auth_token("abc!&#$^<>-12345"), Ok(()));
    }
}
