//! Validation that the CRD schema cannot express. One pure function, used by
//! the controller before anything is created.

use std::fmt;
use std::time::Duration;

use super::types::{ShopRegion, ShopRegionSpec};

/// Why a spec cannot be acted on. `reason` becomes the `Stalled` condition's
/// reason; `field` names the offending field by its manifest path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

pub mod reason {
    pub const REGION_NOT_IN_FAILOVER_ORDER: &str = "RegionNotInFailoverOrder";
    pub const DUPLICATE_REGION_IN_FAILOVER_ORDER: &str = "DuplicateRegionInFailoverOrder";
    pub const PCI_REQUIREMENT_MISSING: &str = "PciRequirementMissing";
    pub const DATA_RESIDENCY_VIOLATION: &str = "DataResidencyViolation";
    pub const INVALID_IMAGE: &str = "InvalidImage";
    pub const INVALID_CAPACITY: &str = "InvalidCapacity";
    pub const INVALID_FAILOVER_POLICY: &str = "InvalidFailoverPolicy";
    pub const INVALID_CACHE: &str = "InvalidCache";
    pub const INVALID_HEALTH_CHECK: &str = "InvalidHealthCheck";
    pub const INVALID_TAGS: &str = "InvalidTags";
}

/// Below this a cooldown no longer stops flapping: a fleet could fail over,
/// see the old writer blink, and fail over again before a human looks.
pub const MIN_COOLDOWN: Duration = Duration::from_secs(60);

/// Every rule violated by the ShopRegion, in the order a reader should fix
/// them. Empty means the spec can be acted on.
pub fn validate(region: &ShopRegion) -> Vec<SpecError> {
    validate_spec(&region.spec)
}

pub fn validate_spec(spec: &ShopRegionSpec) -> Vec<SpecError> {
    let mut errors = Vec::new();
    check_failover(spec, &mut errors);
    check_residency(spec, &mut errors);
    check_pci(spec, &mut errors);
    check_orders(spec, &mut errors);
    check_cache(spec, &mut errors);
    check_tags(spec, &mut errors);
    errors
}

fn err(reason: &'static str, field: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        reason,
        field: field.to_string(),
        message: message.into(),
    }
}

fn check_failover(spec: &ShopRegionSpec, errors: &mut Vec<SpecError>) {
    let order = &spec.failover.order;
    if !order.iter().any(|r| r == &spec.region) {
        errors.push(err(
            reason::REGION_NOT_IN_FAILOVER_ORDER,
            "spec.failover.order",
            format!(
                "region {} is not in failover.order [{}]; every region of the shop must be listed",
                spec.region,
                order.join(", ")
            ),
        ));
    }
    for (i, r) in order.iter().enumerate() {
        if order[..i].contains(r) {
            errors.push(err(
                reason::DUPLICATE_REGION_IN_FAILOVER_ORDER,
                "spec.failover.order",
                format!("region {r} is listed more than once"),
            ));
        }
    }
    if spec.failover.unhealthy_after.as_duration() < Duration::from_secs(1) {
        errors.push(err(
            reason::INVALID_FAILOVER_POLICY,
            "spec.failover.unhealthyAfter",
            "unhealthyAfter must be at least 1s, or a single failed probe would trigger a failover",
        ));
    }
    let confirmed = spec.failover.confirmed_loss_after.as_duration();
    let unhealthy_after = spec.failover.unhealthy_after.as_duration();
    // Checked against a valid unhealthyAfter only: one error says more than
    // two that cannot both be mended.
    if unhealthy_after >= Duration::from_secs(1)
        && (confirmed < Duration::from_secs(1) || confirmed > unhealthy_after)
    {
        errors.push(err(
            reason::INVALID_FAILOVER_POLICY,
            "spec.failover.confirmedLossAfter",
            format!(
                "confirmedLossAfter {} must be at least 1s and at most unhealthyAfter {}: it is the shorter window for a loss that independent signals confirm",
                spec.failover.confirmed_loss_after, spec.failover.unhealthy_after
            ),
        ));
    }
    if spec.failover.cooldown.as_duration() < MIN_COOLDOWN {
        errors.push(err(
            reason::INVALID_FAILOVER_POLICY,
            "spec.failover.cooldown",
            format!(
                "cooldown {} is below 1m; a shorter cooldown cannot stop the fleet from flapping between regions",
                spec.failover.cooldown
            ),
        ));
    }
    check_health_checks(spec, errors);
}

fn check_health_checks(spec: &ShopRegionSpec, errors: &mut Vec<SpecError>) {
    let checks = &spec.failover.health_checks;
    for (i, check) in checks.iter().enumerate() {
        let field = format!("spec.failover.healthChecks[{i}]");
        if !spec.failover.order.contains(&check.region) {
            errors.push(err(
                reason::INVALID_HEALTH_CHECK,
                &format!("{field}.region"),
                format!(
                    "region {} is not in failover.order [{}]",
                    check.region,
                    spec.failover.order.join(", ")
                ),
            ));
        }
        if checks[..i].iter().any(|c| c.region == check.region) {
            errors.push(err(
                reason::INVALID_HEALTH_CHECK,
                &format!("{field}.region"),
                format!("region {} has more than one health check", check.region),
            ));
        }
        if let Err(message) = check_health_url(&check.url) {
            errors.push(err(
                reason::INVALID_HEALTH_CHECK,
                &format!("{field}.url"),
                message,
            ));
        }
    }
}

/// A health URL the probe can GET: `http://host[:port][/path]`.
pub fn check_health_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{url:?}: https health checks are not supported yet; use a plain http:// URL (for example the Service's in-cluster address)"
            ));
        }
        _ => return Err(format!("{url:?} must start with http://")),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => {}
        _ => return Err(format!("{url:?} names no host")),
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!(
            "{url:?} carries credentials; a health URL is probed without them and must not hold secrets"
        ));
    }
    Ok(())
}

fn check_residency(spec: &ShopRegionSpec, errors: &mut Vec<SpecError>) {
    let residency = spec.compliance.data_residency;
    if !residency.allows(&spec.region) {
        errors.push(err(
            reason::DATA_RESIDENCY_VIOLATION,
            "spec.region",
            format!(
                "dataResidency {residency:?} does not allow data in {}; allowed regions start with {}",
                spec.region,
                residency.allowed_region_prefixes().join(" or ")
            ),
        ));
    }
    let outside: Vec<&str> = spec
        .failover
        .order
        .iter()
        .filter(|r| !residency.allows(r))
        .map(String::as_str)
        .collect();
    if !outside.is_empty() {
        errors.push(err(
            reason::DATA_RESIDENCY_VIOLATION,
            "spec.failover.order",
            format!(
                "dataResidency {residency:?} does not allow replicas in {}",
                outside.join(", ")
            ),
        ));
    }
}

fn check_pci(spec: &ShopRegionSpec, errors: &mut Vec<SpecError>) {
    if !spec.compliance.pci {
        return;
    }
    if spec.database.kms_key_id.is_none() {
        errors.push(err(
            reason::PCI_REQUIREMENT_MISSING,
            "spec.database.kmsKeyId",
            "pci requires the database to be encrypted with a customer KMS key",
        ));
    }
    if !spec.cache.transit_encryption {
        errors.push(err(
            reason::PCI_REQUIREMENT_MISSING,
            "spec.cache.transitEncryption",
            "pci requires Redis encryption in transit",
        ));
    }
    if !spec.cache.at_rest_encryption {
        errors.push(err(
            reason::PCI_REQUIREMENT_MISSING,
            "spec.cache.atRestEncryption",
            "pci requires Redis encryption at rest",
        ));
    }
    if spec.cache.auth_secret_ref.is_none() {
        errors.push(err(
            reason::PCI_REQUIREMENT_MISSING,
            "spec.cache.authSecretRef",
            "pci requires Redis AUTH; name the Secret that holds the token",
        ));
    }
    if spec.database.network.is_none() {
        errors.push(err(
            reason::PCI_REQUIREMENT_MISSING,
            "spec.database.network",
            "pci requires the database in the account's own VPC: name its subnet group and security groups (the default VPC is not allowed)",
        ));
    }
    if spec.cache.network.is_none() {
        errors.push(err(
            reason::PCI_REQUIREMENT_MISSING,
            "spec.cache.network",
            "pci requires Redis in the account's own VPC: name its subnet group and security groups (the default VPC is not allowed)",
        ));
    }
}

/// The operator's ownership tags decide what it may touch and delete, so a
/// user tag must never be able to forge or hide them.
fn check_tags(spec: &ShopRegionSpec, errors: &mut Vec<SpecError>) {
    for (key, value) in &spec.tags {
        let problem = if key.starts_with(crate::api::OWNERSHIP_TAG_PREFIX) {
            Some(format!(
                "tag {key:?} is under {}, the operator's ownership tags, which it sets itself and users cannot set",
                crate::api::OWNERSHIP_TAG_PREFIX
            ))
        } else if key.to_ascii_lowercase().starts_with("aws:") {
            Some(format!("tag {key:?}: the aws: prefix is reserved by AWS"))
        } else if key.is_empty() || key.chars().count() > 128 {
            Some(format!("tag key {key:?} must be 1 to 128 characters"))
        } else if value.chars().count() > 256 {
            Some(format!("the value of tag {key:?} is over 256 characters"))
        } else {
            None
        };
        if let Some(message) = problem {
            errors.push(err(reason::INVALID_TAGS, "spec.tags", message));
        }
    }
    if spec.tags.len() > MAX_USER_TAGS {
        errors.push(err(
            reason::INVALID_TAGS,
            "spec.tags",
            format!(
                "{} tags: at most {MAX_USER_TAGS}, since AWS allows 50 per resource and the operator adds its own",
                spec.tags.len()
            ),
        ));
    }
}

const MAX_USER_TAGS: usize = 40;

fn check_orders(spec: &ShopRegionSpec, errors: &mut Vec<SpecError>) {
    let orders = &spec.orders;
    if let Err(message) = check_image_reference(&orders.image) {
        errors.push(err(reason::INVALID_IMAGE, "spec.orders.image", message));
    }
    if orders.orders_per_second_per_replica == 0 {
        errors.push(err(
            reason::INVALID_CAPACITY,
            "spec.orders.ordersPerSecondPerReplica",
            "ordersPerSecondPerReplica must be at least 1",
        ));
    }
    if orders.peak_orders_per_second < orders.baseline_orders_per_second {
        errors.push(err(
            reason::INVALID_CAPACITY,
            "spec.orders.peakOrdersPerSecond",
            format!(
                "peakOrdersPerSecond ({}) is below baselineOrdersPerSecond ({})",
                orders.peak_orders_per_second, orders.baseline_orders_per_second
            ),
        ));
    }
    if let (Some(min), Some(max)) = (orders.min_replicas, orders.max_replicas)
        && max < min
    {
        errors.push(err(
            reason::INVALID_CAPACITY,
            "spec.orders.maxReplicas",
            format!("maxReplicas ({max}) is below minReplicas ({min})"),
        ));
    }
    for (field, value) in [
        ("spec.orders.minReplicas", orders.min_replicas),
        ("spec.orders.maxReplicas", orders.max_replicas),
    ] {
        if let Some(v) = value
            && v < 1
        {
            errors.push(err(
                reason::INVALID_CAPACITY,
                field,
                format!("must be at least 1, got {v}"),
            ));
        }
    }
}

fn check_cache(spec: &ShopRegionSpec, errors: &mut Vec<SpecError>) {
    if spec.cache.auth_secret_ref.is_some() && !spec.cache.transit_encryption {
        errors.push(err(
            reason::INVALID_CACHE,
            "spec.cache.authSecretRef",
            "Redis AUTH needs transitEncryption: true (ElastiCache refuses an AUTH token without TLS)",
        ));
    }
}

/// Checks a container image reference with the grammar of the distribution
/// reference spec: `[host[:port]/]path[:tag][@algorithm:hex]`.
pub fn check_image_reference(image: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{image:?} is not a valid image reference: {why}"));
    if image.is_empty() {
        return bad("it is empty");
    }
    if image.len() > 512 {
        return bad("it is longer than 512 characters");
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains white space");
    }
    let (name_and_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let Some((algorithm, hex)) = digest.split_once(':') else {
            return bad("a digest must be algorithm:hex, for example sha256:<64 hex digits>");
        };
        let algorithm_ok = !algorithm.is_empty()
            && algorithm
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
        let hex_ok = hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
        if !algorithm_ok || !hex_ok {
            return bad("a digest must be algorithm:hex, for example sha256:<64 hex digits>");
        }
    }
    // A tag is the part after the last ':' that is not followed by a '/'
    // (a ':' before a '/' is a registry port).
    let (name, tag) = match name_and_tag.rfind(':') {
        Some(i) if !name_and_tag[i + 1..].contains('/') => {
            (&name_and_tag[..i], Some(&name_and_tag[i + 1..]))
        }
        _ => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return bad("a tag is up to 128 letters, digits, '_', '.' or '-'");
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 && looks_like_registry(components[0]) {
        let host = components.remove(0);
        if !valid_registry(host) {
            return bad("the registry host is malformed");
        }
    }
    if components.iter().any(|c| !valid_path_component(c)) {
        return bad(
            "repository path components are lowercase letters and digits separated by '.', '_', '__' or '-'",
        );
    }
    Ok(())
}

fn looks_like_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn valid_registry(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    port_ok && name_ok
}

fn valid_path_component(component: &str) -> bool {
    if component.is_empty() {
        return false;
    }
    let is_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes: Vec<char> = component.chars().collect();
    if !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if is_alnum(c) {
            i += 1;
            continue;
        }
        // Separators: '.', '_', '__', or one or more '-'.
        let run_end = bytes[i..]
            .iter()
            .position(|&c| is_alnum(c))
            .map_or(bytes.len(), |p| i + p);
        let separator: String = bytes[i..run_end].iter().collect();
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
        i = run_end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme;

    fn reasons(errors: &[SpecError]) -> Vec<(&'static str, &str)> {
        errors
            .iter()
            .map(|e| (e.reason, e.field.as_str()))
            .collect()
    }

    #[test]
    fn the_acme_sample_regions_are_valid() {
        for region in ["us-east-1", "eu-west-1", "ap-northeast-1"] {
            assert_eq!(validate_spec(&acme(region)), vec![], "{region}");
        }
    }

    #[test]
    fn a_region_missing_from_the_failover_order_is_rejected() {
        let spec = acme("sa-east-1");
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![(reason::REGION_NOT_IN_FAILOVER_ORDER, "spec.failover.order")]
        );
    }

    #[test]
    fn a_region_listed_twice_in_the_failover_order_is_rejected() {
        let mut spec = acme("us-east-1");
        spec.failover.order.push("us-east-1".into());
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![(
                reason::DUPLICATE_REGION_IN_FAILOVER_ORDER,
                "spec.failover.order"
            )]
        );
    }

    #[test]
    fn pci_names_every_missing_control() {
        let mut spec = acme("us-east-1");
        spec.compliance.pci = true;
        spec.database.kms_key_id = None;
        spec.cache.transit_encryption = false;
        spec.cache.at_rest_encryption = false;
        spec.cache.auth_secret_ref = None;
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![
                (reason::PCI_REQUIREMENT_MISSING, "spec.database.kmsKeyId"),
                (
                    reason::PCI_REQUIREMENT_MISSING,
                    "spec.cache.transitEncryption"
                ),
                (
                    reason::PCI_REQUIREMENT_MISSING,
                    "spec.cache.atRestEncryption"
                ),
                (reason::PCI_REQUIREMENT_MISSING, "spec.cache.authSecretRef"),
                (reason::PCI_REQUIREMENT_MISSING, "spec.database.network"),
                (reason::PCI_REQUIREMENT_MISSING, "spec.cache.network"),
            ]
        );
    }

    #[test]
    fn user_tags_cannot_set_the_resource_tags_or_aws_reserved_keys() {
        let mut spec = acme("us-east-1");
        spec.tags.insert("shopfleet.io/shop".into(), "other".into());
        spec.tags.insert("aws:createdBy".into(), "me".into());
        spec.tags.insert("cost-center".into(), "shop-42".into());
        let errors = validate_spec(&spec);
        assert_eq!(
            reasons(&errors),
            vec![
                (reason::INVALID_TAGS, "spec.tags"),
                (reason::INVALID_TAGS, "spec.tags")
            ]
        );
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains("shopfleet.io/shop"))
        );
        assert!(errors.iter().any(|e| e.message.contains("aws:createdBy")));
    }

    #[test]
    fn pci_with_every_control_is_accepted() {
        let mut spec = acme("us-east-1");
        spec.compliance.pci = true;
        spec.database.kms_key_id = Some("alias/acme-orders".into());
        spec.cache.auth_secret_ref = Some(crate::api::SecretKeyRef {
            name: "acme-redis-auth".into(),
            key: "token".into(),
        });
        spec.database.network = Some(crate::api::DatabaseNetwork {
            subnet_group_name: "acme-private".into(),
            security_group_ids: vec!["sg-0123456789abcdef0".into()],
            port: None,
        });
        spec.cache.network = Some(crate::api::CacheNetwork {
            subnet_group_name: "acme-private".into(),
            security_group_ids: vec!["sg-0123456789abcdef1".into()],
        });
        assert_eq!(validate_spec(&spec), vec![]);
    }

    #[test]
    fn eu_residency_refuses_a_non_eu_region_and_non_eu_replicas() {
        let mut spec = acme("us-east-1");
        spec.compliance.data_residency = crate::api::DataResidency::EU;
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![
                (reason::DATA_RESIDENCY_VIOLATION, "spec.region"),
                (reason::DATA_RESIDENCY_VIOLATION, "spec.failover.order"),
            ]
        );
        let errors = validate_spec(&spec);
        assert!(errors[1].message.contains("us-east-1, ap-northeast-1"));
    }

    #[test]
    fn eu_residency_accepts_an_all_eu_fleet() {
        let mut spec = acme("eu-west-1");
        spec.compliance.data_residency = crate::api::DataResidency::EU;
        spec.failover.order = vec!["eu-west-1".into(), "eu-central-1".into()];
        assert_eq!(validate_spec(&spec), vec![]);
    }

    #[test]
    fn max_replicas_below_min_replicas_is_rejected() {
        let mut spec = acme("us-east-1");
        spec.orders.min_replicas = Some(10);
        spec.orders.max_replicas = Some(3);
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![(reason::INVALID_CAPACITY, "spec.orders.maxReplicas")]
        );
    }

    #[test]
    fn zero_orders_per_replica_is_rejected() {
        let mut spec = acme("us-east-1");
        spec.orders.orders_per_second_per_replica = 0;
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![(
                reason::INVALID_CAPACITY,
                "spec.orders.ordersPerSecondPerReplica"
            )]
        );
    }

    #[test]
    fn a_peak_below_the_baseline_is_rejected() {
        let mut spec = acme("us-east-1");
        spec.orders.peak_orders_per_second = 10;
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![(reason::INVALID_CAPACITY, "spec.orders.peakOrdersPerSecond")]
        );
    }

    #[test]
    fn redis_auth_without_tls_is_rejected() {
        let mut spec = acme("us-east-1");
        spec.cache.transit_encryption = false;
        spec.cache.auth_secret_ref = Some(crate::api::SecretKeyRef {
            name: "auth".into(),
            key: "token".into(),
        });
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![(reason::INVALID_CACHE, "spec.cache.authSecretRef")]
        );
    }

    #[test]
    fn a_sub_second_unhealthy_after_is_rejected() {
        let mut spec = acme("us-east-1");
        spec.failover.unhealthy_after = crate::api::KubeDuration::parse("500ms").unwrap();
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![(
                reason::INVALID_FAILOVER_POLICY,
                "spec.failover.unhealthyAfter"
            )]
        );
    }

    #[test]
    fn a_confirmed_loss_window_longer_than_unhealthy_after_is_rejected() {
        let mut spec = acme("us-east-1");
        spec.failover.confirmed_loss_after = crate::api::KubeDuration::parse("45s").unwrap();
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![(
                reason::INVALID_FAILOVER_POLICY,
                "spec.failover.confirmedLossAfter"
            )]
        );
        spec.failover.confirmed_loss_after = crate::api::KubeDuration::parse("30s").unwrap();
        assert!(validate_spec(&spec).is_empty());
    }

    fn health_check(region: &str, url: &str) -> crate::api::HealthCheck {
        crate::api::HealthCheck {
            region: region.into(),
            url: url.into(),
        }
    }

    #[test]
    fn a_cooldown_below_a_minute_is_rejected() {
        let mut spec = acme("us-east-1");
        spec.failover.cooldown = crate::api::KubeDuration::parse("30s").unwrap();
        let errors = validate_spec(&spec);
        assert_eq!(
            reasons(&errors),
            vec![(reason::INVALID_FAILOVER_POLICY, "spec.failover.cooldown")]
        );
        assert!(
            errors[0].message.contains("flapping"),
            "{}",
            errors[0].message
        );
        spec.failover.cooldown = crate::api::KubeDuration::parse("1m").unwrap();
        assert_eq!(validate_spec(&spec), vec![]);
    }

    #[test]
    fn health_checks_for_every_region_of_the_order_are_accepted() {
        let mut spec = acme("eu-west-1");
        spec.failover.health_checks = vec![
            health_check("us-east-1", "http://orders.us-east-1.acme.internal/healthz"),
            health_check("eu-west-1", "http://10.1.2.3:8080/healthz"),
            health_check("ap-northeast-1", "http://orders.ap.acme.internal:8080"),
        ];
        assert_eq!(validate_spec(&spec), vec![]);
    }

    #[test]
    fn a_health_check_for_a_region_outside_the_order_is_rejected() {
        let mut spec = acme("eu-west-1");
        spec.failover.health_checks = vec![health_check("sa-east-1", "http://x/healthz")];
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![(
                reason::INVALID_HEALTH_CHECK,
                "spec.failover.healthChecks[0].region"
            )]
        );
    }

    #[test]
    fn two_health_checks_for_one_region_are_rejected() {
        let mut spec = acme("eu-west-1");
        spec.failover.health_checks = vec![
            health_check("eu-west-1", "http://a/healthz"),
            health_check("eu-west-1", "http://b/healthz"),
        ];
        assert_eq!(
            reasons(&validate_spec(&spec)),
            vec![(
                reason::INVALID_HEALTH_CHECK,
                "spec.failover.healthChecks[1].region"
            )]
        );
    }

    #[test]
    fn an_https_health_url_is_rejected_with_the_reason() {
        let mut spec = acme("eu-west-1");
        spec.failover.health_checks = vec![health_check(
            "eu-west-1",
            "https://orders.acme.example/healthz",
        )];
        let errors = validate_spec(&spec);
        assert_eq!(
            reasons(&errors),
            vec![(
                reason::INVALID_HEALTH_CHECK,
                "spec.failover.healthChecks[0].url"
            )]
        );
        assert!(
            errors[0]
                .message
                .contains("https health checks are not supported")
        );
    }

    #[test]
    fn malformed_health_urls_are_rejected() {
        for bad in [
            "ftp://orders/healthz",
            "http://",
            "http://user:secret@orders/healthz",
            "orders/healthz",
            "http://exa mple/healthz",
        ] {
            assert!(check_health_url(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            check_health_url("http://orders:8080/healthz?deep=1"),
            Ok(())
        );
    }

    #[test]
    fn an_invalid_image_is_rejected_with_the_field_named() {
        let mut spec = acme("us-east-1");
        spec.orders.image = "Registry/Orders:latest!".into();
        let errors = validate_spec(&spec);
        assert_eq!(
            reasons(&errors),
            vec![(reason::INVALID_IMAGE, "spec.orders.image")]
        );
        assert!(errors[0].message.contains("not a valid image reference"));
    }

    #[test]
    fn image_references_follow_the_distribution_grammar() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for good in [
            "orders",
            "acme/orders:1.4.2",
            "registry.example.com/acme/orders:1.4.2",
            "localhost:5000/orders",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/acme/orders:v2",
            &format!("ghcr.io/acme/orders@{digest}"),
            &format!("ghcr.io/acme/orders:1.0@{digest}"),
            "acme/order__svc.v1-x",
        ] {
            assert_eq!(check_image_reference(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Orders",
            "acme/orders:",
            "acme/orders:-bad",
            "acme//orders",
            "acme/orders@sha256:xyz",
            "acme/orders latest",
            "-acme/orders",
            "acme/orders.",
            "acme/or...ders",
            "exa_mple.com/orders",
        ] {
            assert!(
                check_image_reference(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
