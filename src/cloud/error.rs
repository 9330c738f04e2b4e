//! Errors from the cloud ports, classified for the controller.
//!
//! The classification, not the AWS error code, decides what the controller
//! does: requeue with backoff, treat as done, wait for a conflicting state to
//! clear, or stop and tell the user. Peers' most reported bug is a transient
//! AWS state (`modifying`, `InvalidDBClusterStateFault`, throttling) surfaced
//! as a terminal failure; here only [`CloudError::Refused`] can ever become
//! terminal, and only when the executor can blame the spec.

use thiserror::Error;

/// Why a transient error happened; each requeues with backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransientKind {
    /// Throttling / RequestLimitExceeded.
    Throttled,
    /// HTTP 5xx from the service.
    ServerError,
    /// No answer in time. The request may or may not have been carried out,
    /// so every mutating action must be safe to repeat.
    Timeout,
    /// The resource is in a state that forbids the call for now
    /// (`InvalidDBClusterStateFault`: creating, modifying, backing-up…).
    Busy,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CloudError {
    /// Retry later; never terminal.
    #[error("{code}: {message} (transient, will retry)")]
    Transient {
        kind: TransientKind,
        code: String,
        message: String,
    },
    /// The resource named in the call does not exist.
    #[error("{code}: {message}")]
    NotFound { code: String, message: String },
    /// A create named an identifier that exists. For our deterministic
    /// identifiers this usually means an earlier attempt succeeded.
    #[error("{code}: {message}")]
    AlreadyExists { code: String, message: String },
    /// The call conflicts with the resource's current shape (a cluster that
    /// still has instances, a global cluster that still has members). It
    /// clears when the other steps of the plan are done: requeue.
    #[error("{code}: {message}")]
    InvalidState { code: String, message: String },
    /// AWS rejects the request as invalid for this input
    /// (`InvalidParameterCombination`, `InvalidParameterValue`, an unknown
    /// engine version…). Retrying the same request cannot help.
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
    /// The regional endpoint cannot be reached at all.
    #[error("region {region} unavailable: {message}")]
    RegionUnavailable { region: String, message: String },
}

impl CloudError {
    pub fn throttled(message: impl Into<String>) -> Self {
        Self::transient(TransientKind::Throttled, "Throttling", message)
    }

    pub fn busy(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::transient(TransientKind::Busy, code, message)
    }

    pub fn transient(
        kind: TransientKind,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Transient {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn not_found(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::NotFound {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn already_exists(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::AlreadyExists {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn invalid_state(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidState {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn refused(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Refused {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn region_unavailable(region: impl Into<String>, message: impl Into<String>) -> Self {
        Self::RegionUnavailable {
            region: region.into(),
            message: message.into(),
        }
    }

    /// The error codes by which AWS services say "slow down".
    pub const THROTTLING_CODES: [&str; 7] = [
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "APICallRateForCustomerExceeded",
    ];

    /// Classifies an AWS error code, as the SDK adapters receive it
    /// (`ProvideErrorMetadata::code()`). Unknown codes are transient: a
    /// wrongly retried error costs a requeue, a wrongly terminal one strands
    /// the user.
    pub fn from_aws_code(code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        match code {
            code if Self::THROTTLING_CODES.contains(&code) => {
                Self::transient(TransientKind::Throttled, code, message)
            }
            "InternalFailure"
            | "InternalError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException" => {
                Self::transient(TransientKind::ServerError, code, message)
            }
            "RequestTimeout" | "RequestTimeoutException" => {
                Self::transient(TransientKind::Timeout, code, message)
            }
            "InvalidDBClusterStateFault"
            | "InvalidDBInstanceState"
            | "InvalidDBInstanceStateFault"
            | "InvalidGlobalClusterStateFault"
            | "InvalidReplicationGroupState"
            | "InvalidGlobalReplicationGroupState"
            | "InvalidCacheClusterState"
            | "InvalidUserGroupState"
            | "InvalidSnapshotState" => Self::transient(TransientKind::Busy, code, message),
            "DBClusterNotFoundFault"
            | "DBInstanceNotFound"
            | "DBInstanceNotFoundFault"
            | "GlobalClusterNotFoundFault"
            | "DBClusterSnapshotNotFoundFault"
            | "ReplicationGroupNotFoundFault"
            | "GlobalReplicationGroupNotFoundFault"
            | "CacheClusterNotFound"
            | "NodeGroupNotFoundFault"
            | "SnapshotNotFoundFault" => Self::not_found(code, message),
            "DBClusterAlreadyExistsFault"
            | "DBInstanceAlreadyExists"
            | "DBInstanceAlreadyExistsFault"
            | "GlobalClusterAlreadyExistsFault"
            | "DBClusterSnapshotAlreadyExistsFault"
            | "ReplicationGroupAlreadyExists"
            | "GlobalReplicationGroupAlreadyExistsFault"
            | "CacheClusterAlreadyExists"
            | "SnapshotAlreadyExistsFault" => Self::already_exists(code, message),
            // Quotas are not the spec's fault and clear when someone raises
            // them or frees capacity: wait, do not give up.
            "DBClusterQuotaExceededFault"
            | "InstanceQuotaExceeded"
            | "StorageQuotaExceeded"
            | "GlobalClusterQuotaExceededFault"
            | "InsufficientDBInstanceCapacity"
            | "InsufficientCacheClusterCapacity"
            | "NodeQuotaForClusterExceeded"
            | "NodeQuotaForCustomerExceeded"
            | "ClusterQuotaForCustomerExceeded"
            | "NodeGroupsPerReplicationGroupQuotaExceeded"
            | "SnapshotQuotaExceededFault"
            | "TagQuotaPerResourceExceeded"
            // ElastiCache's service-linked role is missing: someone with
            // iam:CreateServiceLinkedRole must create it (docs/aws-iam.md).
            | "ServiceLinkedRoleNotFoundFault"
            // A replica count change AWS finds already done: the group
            // changed under the plan; the next observation catches up.
            | "NoOperationFault" => Self::invalid_state(code, message),
            "InvalidParameterCombination"
            | "InvalidParameterValue"
            | "InvalidParameter"
            | "KMSKeyNotAccessibleFault"
            | "InvalidSubnet"
            | "DBSubnetGroupNotFoundFault"
            | "DBClusterParameterGroupNotFound"
            | "InvalidKMSKeyFault"
            | "CacheSubnetGroupNotFoundFault"
            | "CacheParameterGroupNotFound"
            | "CacheSecurityGroupNotFound"
            | "UserGroupNotFound"
            // A final snapshot on a node type that cannot take one.
            | "SnapshotFeatureNotSupportedFault"
            | "InvalidVPCNetworkStateFault"
            | "InvalidARN" => Self::refused(code, message),
            _ => Self::transient(TransientKind::ServerError, code, message),
        }
    }

    /// Requeue with backoff and try the same thing again.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. })
    }

    pub fn is_region_unavailable(&self) -> bool {
        matches!(self, Self::RegionUnavailable { .. })
    }

    /// The AWS error code, or a stable label for the synthetic classes.
    pub fn code(&self) -> &str {
        match self {
            Self::Transient { code, .. }
            | Self::NotFound { code, .. }
            | Self::AlreadyExists { code, .. }
            | Self::InvalidState { code, .. }
            | Self::Refused { code, .. } => code,
            Self::RegionUnavailable { .. } => "RegionUnavailable",
        }
    }

    /// AWS's message without the classification decoration.
    pub fn message(&self) -> &str {
        match self {
            Self::Transient { message, .. }
            | Self::NotFound { message, .. }
            | Self::AlreadyExists { message, .. }
            | Self::InvalidState { message, .. }
            | Self::Refused { message, .. }
            | Self::RegionUnavailable { message, .. } => message,
        }
    }

    /// A bounded label for the `cloud_errors_total{kind}` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Transient { kind, .. } => match kind {
                TransientKind::Throttled => "throttled",
                TransientKind::ServerError => "server_error",
                TransientKind::Timeout => "timeout",
                TransientKind::Busy => "busy",
            },
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::InvalidState { .. } => "invalid_state",
            Self::Refused { .. } => "refused",
            Self::RegionUnavailable { .. } => "region_unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_cluster_state_and_throttling_are_transient() {
        for code in [
            "InvalidDBClusterStateFault",
            "Throttling",
            "ThrottlingException",
            "InternalFailure",
        ] {
            assert!(
                CloudError::from_aws_code(code, "x").is_transient(),
                "{code}"
            );
        }
    }

    #[test]
    fn elasticache_codes_are_classified_like_their_rds_counterparts() {
        for (code, label) in [
            ("InvalidReplicationGroupState", "busy"),
            ("InvalidGlobalReplicationGroupState", "busy"),
            ("APICallRateForCustomerExceeded", "throttled"),
            ("ReplicationGroupNotFoundFault", "not_found"),
            ("GlobalReplicationGroupNotFoundFault", "not_found"),
            ("ReplicationGroupAlreadyExists", "already_exists"),
            ("GlobalReplicationGroupAlreadyExistsFault", "already_exists"),
            ("SnapshotAlreadyExistsFault", "already_exists"),
            ("NodeQuotaForCustomerExceeded", "invalid_state"),
            ("InsufficientCacheClusterCapacity", "invalid_state"),
            ("CacheSubnetGroupNotFoundFault", "refused"),
            ("InvalidParameterValue", "refused"),
            ("InvalidParameterCombination", "refused"),
            ("SnapshotFeatureNotSupportedFault", "refused"),
            ("ServiceLinkedRoleNotFoundFault", "invalid_state"),
            ("NoOperationFault", "invalid_state"),
            ("NodeQuotaForClusterExceeded", "invalid_state"),
            ("InvalidCacheClusterState", "busy"),
            ("CacheClusterAlreadyExists", "already_exists"),
        ] {
            assert_eq!(
                CloudError::from_aws_code(code, "x").metric_label(),
                label,
                "{code}"
            );
        }
    }

    #[test]
    fn unknown_codes_are_retried_not_terminal() {
        let e = CloudError::from_aws_code("SomethingNew", "x");
        assert!(e.is_transient());
    }

    #[test]
    fn invalid_parameters_are_refused_and_quotas_wait() {
        assert_eq!(
            CloudError::from_aws_code("InvalidParameterCombination", "x").metric_label(),
            "refused"
        );
        assert_eq!(
            CloudError::from_aws_code("StorageQuotaExceeded", "x").metric_label(),
            "invalid_state"
        );
    }

    #[test]
    fn metric_labels_are_stable() {
        assert_eq!(
            CloudError::throttled("slow down").metric_label(),
            "throttled"
        );
        assert_eq!(
            CloudError::busy("InvalidDBClusterStateFault", "m").metric_label(),
            "busy"
        );
        assert_eq!(
            CloudError::region_unavailable("eu-west-1", "down").metric_label(),
            "region_unavailable"
        );
        assert_eq!(
            CloudError::from_aws_code("DBClusterNotFoundFault", "m").metric_label(),
            "not_found"
        );
        assert_eq!(
            CloudError::from_aws_code("GlobalClusterAlreadyExistsFault", "m").metric_label(),
            "already_exists"
        );
    }

    #[test]
    fn display_keeps_the_aws_code() {
        let e = CloudError::refused(
            "InvalidParameterCombination",
            "no master credentials on a secondary",
        );
        assert_eq!(
            e.to_string(),
            "InvalidParameterCombination: no master credentials on a secondary"
        );
        assert_eq!(e.code(), "InvalidParameterCombination");
    }
}
