//! AWS status words, parsed once where they enter (the SDK adapters, the
//! simulated cloud's saved state) into enums that the plans and the health
//! logic match on.
//!
//! Each enum names the states AWS documents for its field and keeps any
//! other word in `Other`, spelled as AWS spelled it: AWS adds states now and
//! then, and an unknown one must stay visible (in messages and the status)
//! rather than fail to parse. `as_str()`, `Display` and serde give back the
//! AWS word exactly, so saved state and statuses read as before.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares one status enum: its variants with their AWS words, an
/// `Other(String)` arm, `parse`, `as_str`, `Display`, `From<&str>` and serde
/// as the AWS word.
macro_rules! aws_status {
    (
        $(#[$meta:meta])*
        $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident => $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
            /// A word this code does not know, as AWS gave it.
            Other(String),
        }

        impl $name {
            /// The enum of an AWS word; an unknown word is kept in `Other`.
            pub fn parse(word: &str) -> Self {
                match word {
                    $($word => Self::$variant,)+
                    other => Self::Other(other.to_string()),
                }
            }

            /// The AWS word.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $word,)+
                    Self::Other(word) => word,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(word: &str) -> Self {
                Self::parse(word)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(|word| Self::parse(&word))
            }
        }
    };
}

aws_status! {
    /// `DBCluster.Status` of an Aurora cluster.
    ClusterStatus {
        Available => "available",
        BackingUp => "backing-up",
        Backtracking => "backtracking",
        CloningFailed => "cloning-failed",
        Creating => "creating",
        Deleting => "deleting",
        Failed => "failed",
        FailingOver => "failing-over",
        InaccessibleEncryptionCredentials => "inaccessible-encryption-credentials",
        InaccessibleEncryptionCredentialsRecoverable => "inaccessible-encryption-credentials-recoverable",
        IncompatibleNetwork => "incompatible-network",
        IncompatibleParameters => "incompatible-parameters",
        IncompatibleRestore => "incompatible-restore",
        Maintenance => "maintenance",
        Migrating => "migrating",
        MigrationFailed => "migration-failed",
        Modifying => "modifying",
        Promoting => "promoting",
        Rebooting => "rebooting",
        Renaming => "renaming",
        ResettingMasterCredentials => "resetting-master-credentials",
        Starting => "starting",
        Stopped => "stopped",
        Stopping => "stopping",
        StorageFull => "storage-full",
        StorageOptimization => "storage-optimization",
        SwitchingOver => "switching-over",
        UpdateIamDbAuth => "update-iam-db-auth",
        Upgrading => "upgrading",
    }
}

aws_status! {
    /// `DBInstance.DBInstanceStatus` of an Aurora instance.
    InstanceStatus {
        Available => "available",
        BackingUp => "backing-up",
        ConfiguringEnhancedMonitoring => "configuring-enhanced-monitoring",
        ConfiguringIamDatabaseAuth => "configuring-iam-database-auth",
        ConfiguringLogExports => "configuring-log-exports",
        Creating => "creating",
        Deleting => "deleting",
        Failed => "failed",
        InaccessibleEncryptionCredentials => "inaccessible-encryption-credentials",
        IncompatibleNetwork => "incompatible-network",
        IncompatibleParameters => "incompatible-parameters",
        IncompatibleRestore => "incompatible-restore",
        Maintenance => "maintenance",
        Modifying => "modifying",
        Rebooting => "rebooting",
        Renaming => "renaming",
        Starting => "starting",
        Stopped => "stopped",
        Stopping => "stopping",
        StorageFull => "storage-full",
        StorageOptimization => "storage-optimization",
        Upgrading => "upgrading",
    }
}

aws_status! {
    /// `GlobalCluster.Status` of an Aurora global database.
    GlobalClusterStatus {
        Available => "available",
        Creating => "creating",
        Deleting => "deleting",
        FailingOver => "failing-over",
        Modifying => "modifying",
        SwitchingOver => "switching-over",
        Upgrading => "upgrading",
    }
}

aws_status! {
    /// `GlobalCluster.FailoverState.Status`.
    GlobalFailoverStatus {
        Pending => "pending",
        FailingOver => "failing-over",
        SwitchingOver => "switching-over",
        Cancelling => "cancelling",
    }
}

aws_status! {
    /// `ReplicationGroup.Status` (and `NodeGroup.Status`, which takes the
    /// same words) of an ElastiCache replication group.
    ReplicationGroupStatus {
        Available => "available",
        Creating => "creating",
        CreateFailed => "create-failed",
        Deleting => "deleting",
        Modifying => "modifying",
        Snapshotting => "snapshotting",
    }
}

aws_status! {
    /// `GlobalReplicationGroup.Status` of a Global Datastore.
    GlobalReplicationGroupStatus {
        Available => "available",
        Creating => "creating",
        Deleting => "deleting",
        Modifying => "modifying",
        /// The primary has no secondary (yet, or any more).
        PrimaryOnly => "primary-only",
    }
}

aws_status! {
    /// `GlobalReplicationGroupMember.Status`: the link of a replication
    /// group to its Global Datastore.
    GlobalMemberStatus {
        Associating => "associating",
        Associated => "associated",
        Disassociating => "disassociating",
    }
}

aws_status! {
    /// `AutomaticFailover` of a replication group or Global Datastore member.
    AutomaticFailoverStatus {
        Enabled => "enabled",
        Disabled => "disabled",
        Enabling => "enabling",
        Disabling => "disabling",
    }
}

aws_status! {
    /// `NodeGroupMember.CurrentRole` of a node (cluster mode off only).
    NodeRole {
        Primary => "primary",
        Replica => "replica",
    }
}

impl GlobalReplicationGroupStatus {
    /// `available` or `primary-only`: no change under way.
    pub fn is_settled(&self) -> bool {
        matches!(self, Self::Available | Self::PrimaryOnly)
    }
}

impl AutomaticFailoverStatus {
    /// On, or being turned on.
    pub fn is_on(&self) -> bool {
        matches!(self, Self::Enabled | Self::Enabling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_word_parses_to_its_variant_and_back() {
        for word in ["available", "failing-over", "switching-over", "backing-up"] {
            assert_eq!(ClusterStatus::parse(word).as_str(), word);
            assert!(!matches!(
                ClusterStatus::parse(word),
                ClusterStatus::Other(_)
            ));
        }
        assert_eq!(
            GlobalReplicationGroupStatus::parse("primary-only"),
            GlobalReplicationGroupStatus::PrimaryOnly
        );
        assert_eq!(
            GlobalMemberStatus::parse("associated").to_string(),
            "associated"
        );
    }

    #[test]
    fn an_unknown_word_is_kept_as_aws_spelled_it() {
        let status = ClusterStatus::parse("some-new-state");
        assert_eq!(status, ClusterStatus::Other("some-new-state".into()));
        assert_eq!(status.as_str(), "some-new-state");
        assert_eq!(format!("cluster is {status}"), "cluster is some-new-state");
    }

    #[test]
    fn serde_uses_the_aws_word() {
        assert_eq!(
            serde_json::to_string(&InstanceStatus::Deleting).unwrap(),
            r#""deleting""#
        );
        assert_eq!(
            serde_json::from_str::<GlobalClusterStatus>(r#""switching-over""#).unwrap(),
            GlobalClusterStatus::SwitchingOver
        );
        assert_eq!(
            serde_json::from_str::<ReplicationGroupStatus>(r#""rebooting""#).unwrap(),
            ReplicationGroupStatus::Other("rebooting".into())
        );
        assert_eq!(
            serde_json::to_string(&ReplicationGroupStatus::Other("rebooting".into())).unwrap(),
            r#""rebooting""#
        );
    }
}
