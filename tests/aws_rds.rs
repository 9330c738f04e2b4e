//! The real Aurora adapter (`RdsAurora` through `AwsCloud`) against moto,
//! a real AWS API emulator started on 127.0.0.1 by the test setup.
//!
//! Every call moto implements goes through the adapter here. Calls moto does
//! not implement (FailoverGlobalCluster, SwitchoverGlobalCluster,
//! ModifyGlobalCluster) and CloudWatch's GetMetricData (moto does not speak
//! the CBOR protocol the SDK uses for CloudWatch) are checked request by
//! request in `tests/aws_requests.rs`.
//!
//! moto's gaps shape a few tests: it keeps global clusters in us-east-1 and
//! runs RemoveFromGlobalCluster only there, it does not mark the source of
//! CreateGlobalCluster as the writer, it has no AlreadyExists check for
//! clusters (instances have one), and it answers ModifyDBCluster on a
//! missing cluster with HTTP 500.

mod aws;

use shopfleet::cloud::CloudError;
use shopfleet::cloud::aurora::{
    CreateClusterRequest, CreateGlobalClusterRequest, CreateInstanceRequest, DeleteClusterRequest,
    InstanceStatus, MasterPassword, ModifyClusterRequest, Tags, instances_of,
};

const ACCOUNT: &str = "123456789012";

fn tags(owner: &str) -> Tags {
    Tags::from([
        ("shopfleet.io/shop".to_string(), owner.to_string()),
        (
            "shopfleet.io/managed-by".to_string(),
            "shopfleet".to_string(),
        ),
    ])
}

fn primary(id: &str) -> CreateClusterRequest {
    CreateClusterRequest {
        cluster_id: id.into(),
        engine: "aurora-postgresql".into(),
        engine_version: "16.6".into(),
        kms_key_id: None,
        storage_encrypted: true,
        deletion_protection: true,
        tags: tags(id),
        global_cluster_id: None,
        master_username: Some("shopfleet_admin".into()),
        master_user_password: Some(MasterPassword::new("sim-password-0123456789")),
        ..Default::default()
    }
}

fn secondary(id: &str, global: &str) -> CreateClusterRequest {
    CreateClusterRequest {
        global_cluster_id: Some(global.into()),
        master_username: None,
        master_user_password: None,
        ..primary(id)
    }
}

fn instance(cluster: &str, slot: u32) -> CreateInstanceRequest {
    CreateInstanceRequest {
        instance_id: format!("{cluster}-{slot}"),
        cluster_id: cluster.into(),
        class: "db.r6g.large".into(),
        engine: "aurora-postgresql".into(),
        tags: tags(cluster),
        ..Default::default()
    }
}

fn cluster_arn(region: &str, id: &str) -> String {
    format!("arn:aws:rds:{region}:{ACCOUNT}:cluster:{id}")
}

#[tokio::test]
async fn a_primary_cluster_is_created_with_managed_credentials_and_described_with_its_tags() {
    let aws = aws::Emulated::start().await;
    let us = aws.aurora("us-east-1");
    let created = us
        .create_cluster(&primary("create-describe"))
        .await
        .unwrap();
    assert_eq!(created.id, "create-describe");
    assert_eq!(created.arn, cluster_arn("us-east-1", "create-describe"));
    assert_eq!(created.engine, "aurora-postgresql");

    let described = us
        .describe_cluster("create-describe")
        .await
        .unwrap()
        .expect("the cluster exists");
    assert_eq!(described.arn, created.arn);
    assert_eq!(described.engine_version, "16.6");
    assert!(described.storage_encrypted);
    assert!(described.deletion_protection);
    assert_eq!(described.tags, tags("create-describe"));
    assert_eq!(described.global_cluster_id, None);
    assert!(described.writer_endpoint.is_some() && described.reader_endpoint.is_some());
    assert!(described.created_at.is_some());
}

#[tokio::test]
async fn what_does_not_exist_is_none_or_empty_not_an_error() {
    let aws = aws::Emulated::start().await;
    let eu = aws.aurora("eu-west-1");
    assert_eq!(eu.describe_cluster("never-created").await.unwrap(), None);
    assert_eq!(
        eu.describe_global_cluster("never-created").await.unwrap(),
        None
    );
    assert_eq!(eu.list_instances("never-created").await.unwrap(), vec![]);
}

#[tokio::test]
async fn clusters_are_regional() {
    let aws = aws::Emulated::start().await;
    aws.aurora("ap-northeast-1")
        .create_cluster(&primary("regional"))
        .await
        .unwrap();
    assert!(
        aws.aurora("ap-northeast-1")
            .describe_cluster("regional")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        aws.aurora("eu-west-1")
            .describe_cluster("regional")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn instances_are_listed_oldest_first_with_the_writer_flag_and_tags() {
    let aws = aws::Emulated::start().await;
    let us = aws.aurora("us-east-1");
    us.create_cluster(&primary("listing")).await.unwrap();
    let first = us.create_instance(&instance("listing", 0)).await.unwrap();
    assert_eq!(first.id, "listing-0");
    assert_eq!(first.class, "db.r6g.large");
    us.create_instance(&instance("listing", 1)).await.unwrap();
    // An instance of another cluster is not listed.
    us.create_cluster(&primary("listing-other")).await.unwrap();
    us.create_instance(&instance("listing-other", 0))
        .await
        .unwrap();

    let listed = us.list_instances("listing").await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["listing-0", "listing-1"]);
    assert!(listed[0].is_writer, "{listed:?}");
    assert!(!listed[1].is_writer, "{listed:?}");
    assert_eq!(listed[0].tags, tags("listing"));
    assert_eq!(
        listed[0].arn,
        format!("arn:aws:rds:us-east-1:{ACCOUNT}:db:listing-0")
    );
    assert_eq!(listed[1].status, InstanceStatus::Available);

    let cluster = us.describe_cluster("listing").await.unwrap().unwrap();
    assert_eq!(cluster.members, ["listing-0", "listing-1"]);
}

/// The shared read of a region's instances and global clusters: joined with
/// the region's clusters, the same answer as each cluster's own listing.
#[tokio::test]
async fn the_region_wide_instance_listing_joined_with_its_clusters_is_each_cluster_s_listing() {
    let aws = aws::Emulated::start().await;
    // A region no other test of this binary uses: its listing is ours.
    let region = aws.aurora("ap-south-1");
    for id in ["joined-a", "joined-b"] {
        region.create_cluster(&primary(id)).await.unwrap();
        region.create_instance(&instance(id, 0)).await.unwrap();
        region.create_instance(&instance(id, 1)).await.unwrap();
    }
    let all = region.describe_instances().await.unwrap();
    let clusters = region.describe_clusters().await.unwrap();
    for cluster in &clusters {
        assert_eq!(
            instances_of(cluster, &all),
            region.list_instances(&cluster.id).await.unwrap(),
            "{}",
            cluster.id
        );
    }
    let writer = clusters.iter().find(|c| c.id == "joined-a").unwrap();
    assert_eq!(writer.writer.as_deref(), Some("joined-a-0"));

    let us = aws.aurora("us-east-1");
    us.create_cluster(&primary("joined-source")).await.unwrap();
    us.create_global_cluster(&CreateGlobalClusterRequest {
        global_cluster_id: "joined-global".into(),
        source_cluster_arn: cluster_arn("us-east-1", "joined-source"),
        deletion_protection: false,
        tags: Tags::new(),
    })
    .await
    .unwrap();
    let globals = us.describe_global_clusters().await.unwrap();
    assert!(
        globals.iter().any(|g| g.id == "joined-global"
            && g.members
                .iter()
                .any(|m| m.cluster_arn == cluster_arn("us-east-1", "joined-source"))),
        "{globals:?}"
    );
}

#[tokio::test]
async fn a_repeated_instance_create_is_classified_already_exists() {
    let aws = aws::Emulated::start().await;
    let us = aws.aurora("us-east-1");
    us.create_cluster(&primary("duplicate")).await.unwrap();
    us.create_instance(&instance("duplicate", 0)).await.unwrap();
    let error = us
        .create_instance(&instance("duplicate", 0))
        .await
        .unwrap_err();
    assert!(error.is_already_exists(), "{error:?}");
    assert_eq!(error.code(), "DBInstanceAlreadyExists");
}

#[tokio::test]
async fn modify_cluster_changes_protection_and_engine_version_at_once() {
    let aws = aws::Emulated::start().await;
    let us = aws.aurora("us-east-1");
    us.create_cluster(&primary("modify")).await.unwrap();
    let modified = us
        .modify_cluster(&ModifyClusterRequest {
            cluster_id: "modify".into(),
            engine_version: Some("16.8".into()),
            deletion_protection: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(modified.engine_version, "16.8");
    assert!(!modified.deletion_protection);
    let described = us.describe_cluster("modify").await.unwrap().unwrap();
    assert_eq!(described.engine_version, "16.8");
    assert!(!described.deletion_protection);
}

#[tokio::test]
async fn a_cluster_is_deleted_only_unprotected_and_without_instances() {
    let aws = aws::Emulated::start().await;
    let us = aws.aurora("us-east-1");
    us.create_cluster(&primary("deletion")).await.unwrap();
    us.create_instance(&instance("deletion", 0)).await.unwrap();
    let delete = DeleteClusterRequest {
        cluster_id: "deletion".into(),
        skip_final_snapshot: false,
        final_snapshot_id: Some("deletion-final".into()),
    };

    let protected = us.delete_cluster(&delete).await.unwrap_err();
    assert!(
        matches!(protected, CloudError::Refused { ref code, .. } if code == "InvalidParameterCombination"),
        "{protected:?}"
    );
    us.modify_cluster(&ModifyClusterRequest {
        cluster_id: "deletion".into(),
        deletion_protection: Some(false),
        ..ModifyClusterRequest::default()
    })
    .await
    .unwrap();
    let with_instances = us.delete_cluster(&delete).await.unwrap_err();
    assert_eq!(with_instances.code(), "InvalidDBClusterStateFault");
    assert!(with_instances.is_transient(), "{with_instances:?}");

    us.delete_instance("deletion-0").await.unwrap();
    let gone = us.delete_instance("deletion-0").await.unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
    assert_eq!(us.list_instances("deletion").await.unwrap(), vec![]);

    us.delete_cluster(&delete).await.unwrap();
    assert_eq!(us.describe_cluster("deletion").await.unwrap(), None);
    let again = us.delete_cluster(&delete).await.unwrap_err();
    assert!(again.is_not_found(), "{again:?}");
}

#[tokio::test]
async fn tags_are_added_to_the_existing_ones() {
    let aws = aws::Emulated::start().await;
    let eu = aws.aurora("eu-west-1");
    let mut request = primary("adopted");
    request.tags = Tags::from([("team".to_string(), "payments".to_string())]);
    let cluster = eu.create_cluster(&request).await.unwrap();
    eu.add_tags(&cluster.arn, &tags("acme")).await.unwrap();
    let described = eu.describe_cluster("adopted").await.unwrap().unwrap();
    let mut expected = tags("acme");
    expected.insert("team".into(), "payments".into());
    assert_eq!(described.tags, expected);
}

#[tokio::test]
async fn a_global_cluster_is_created_from_a_primary_and_a_secondary_joins_without_credentials() {
    let aws = aws::Emulated::start().await;
    let us = aws.aurora("us-east-1");
    let eu = aws.aurora("eu-west-1");
    let source = us.create_cluster(&primary("join-primary")).await.unwrap();
    let created = us
        .create_global_cluster(&CreateGlobalClusterRequest {
            global_cluster_id: "join-global".into(),
            source_cluster_arn: source.arn.clone(),
            deletion_protection: true,
            tags: tags("join"),
        })
        .await
        .unwrap();
    assert_eq!(created.id, "join-global");
    assert_eq!(
        created.arn,
        format!("arn:aws:rds::{ACCOUNT}:global-cluster:join-global")
    );
    assert!(created.deletion_protection);

    let joined = eu
        .create_cluster(&secondary("join-secondary", "join-global"))
        .await
        .unwrap();
    assert_eq!(joined.global_cluster_id.as_deref(), Some("join-global"));

    // Any regional endpoint answers for the global cluster.
    let global = eu
        .describe_global_cluster("join-global")
        .await
        .unwrap()
        .expect("the global cluster exists");
    assert_eq!(global.engine, "aurora-postgresql");
    assert_eq!(global.engine_version, "16.6");
    assert!(global.deletion_protection);
    assert!(global.endpoint.is_some());
    let members: Vec<(&str, &str)> = global
        .members
        .iter()
        .map(|m| (m.region.as_str(), m.cluster_arn.as_str()))
        .collect();
    assert_eq!(
        members,
        [
            ("us-east-1", source.arn.as_str()),
            ("eu-west-1", joined.arn.as_str())
        ]
    );
    assert_eq!(
        eu.describe_cluster("join-secondary")
            .await
            .unwrap()
            .unwrap()
            .global_cluster_id
            .as_deref(),
        Some("join-global")
    );
}

#[tokio::test]
async fn a_primary_created_inside_an_empty_global_cluster_is_its_writer() {
    let aws = aws::Emulated::start().await;
    let us = aws.aurora("us-east-1");
    let seed = us.create_cluster(&primary("rebuild-seed")).await.unwrap();
    us.create_global_cluster(&CreateGlobalClusterRequest {
        global_cluster_id: "rebuild-global".into(),
        source_cluster_arn: seed.arn.clone(),
        deletion_protection: false,
        tags: Tags::new(),
    })
    .await
    .unwrap();
    us.remove_from_global_cluster("rebuild-global", &seed.arn)
        .await
        .unwrap();
    let emptied = us
        .describe_global_cluster("rebuild-global")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(emptied.members, vec![]);

    let mut inside = primary("rebuild-primary");
    inside.global_cluster_id = Some("rebuild-global".into());
    let rebuilt = us.create_cluster(&inside).await.unwrap();
    let global = us
        .describe_global_cluster("rebuild-global")
        .await
        .unwrap()
        .unwrap();
    let writer = global.writer().expect("the new primary writes");
    assert_eq!(writer.cluster_arn, rebuilt.arn);
    assert_eq!(writer.region, "us-east-1");
}

#[tokio::test]
async fn a_global_cluster_with_members_is_not_deleted_and_an_empty_one_is() {
    let aws = aws::Emulated::start().await;
    let us = aws.aurora("us-east-1");
    let member = us.create_cluster(&primary("empty-member")).await.unwrap();
    us.create_global_cluster(&CreateGlobalClusterRequest {
        global_cluster_id: "empty-global".into(),
        source_cluster_arn: member.arn.clone(),
        deletion_protection: false,
        tags: Tags::new(),
    })
    .await
    .unwrap();

    let refused = us.delete_global_cluster("empty-global").await.unwrap_err();
    assert_eq!(refused.code(), "InvalidGlobalClusterStateFault");
    assert!(refused.is_transient(), "{refused:?}");

    us.remove_from_global_cluster("empty-global", &member.arn)
        .await
        .unwrap();
    us.delete_global_cluster("empty-global").await.unwrap();
    assert_eq!(
        us.describe_global_cluster("empty-global").await.unwrap(),
        None
    );
}

/// What every shop's health sampler reads of a region in one round: all
/// its clusters, page after page (AWS's pages hold 100).
#[tokio::test]
async fn every_cluster_of_a_region_is_described_page_after_page() {
    let aws = aws::Emulated::start().await;
    // A region no other test of this binary uses: its listing is ours.
    let region = aws.aurora("sa-east-1");
    let mut created: Vec<String> = (0..105).map(|n| format!("paged-{n:03}")).collect();
    for id in &created {
        region.create_cluster(&primary(id)).await.unwrap();
    }
    let mut described: Vec<String> = region
        .describe_clusters()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    described.sort();
    created.sort();
    assert_eq!(described, created);
    assert!(
        aws.aurora("ca-central-1")
            .describe_clusters()
            .await
            .unwrap()
            .is_empty(),
        "an empty region lists nothing"
    );
}
