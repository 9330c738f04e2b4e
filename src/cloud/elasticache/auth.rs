//! The Redis AUTH token, from the Secret that `spec.cache.authSecretRef`
//! names to the request that creates a replication group.
//!
//! The controller reads the Secret (the only I/O); [`auth_from_secret`]
//! decides, purely, whether its value can be used. Messages name the
//! Secret and the key, never the value.

use k8s_openapi::api::core::v1::Secret;

use crate::api::SecretKeyRef;

use super::port::AuthToken;

/// Condition reasons while the token cannot be used. None is terminal: the
/// Secret is not part of the spec, and the user may create or fix it at any
/// time.
pub mod reason {
    pub const AUTH_SECRET_MISSING: &str = "AuthSecretMissing";
    pub const AUTH_SECRET_KEY_MISSING: &str = "AuthSecretKeyMissing";
    pub const AUTH_TOKEN_INVALID: &str = "AuthTokenInvalid";
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
        .map(|b| b.0.clone())
        // A real API server folds `stringData` into `data`; an API server
        // that keeps it as written (kubesim) still serves the token.
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&reference.key))
                .map(|s| s.clone().into_bytes())
        });
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
    fn string_data_is_read_when_data_lacks_the_key() {
        let s = Secret {
            string_data: Some(BTreeMap::from([("token".to_string(), TOKEN.to_string())])),
            ..Secret::default()
        };
        assert_eq!(
            auth_from_secret(&reference(), "shop", Some(&s)),
            CacheAuth::Token(AuthToken::new(TOKEN))
        );
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
