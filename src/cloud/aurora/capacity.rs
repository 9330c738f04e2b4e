//! Capacity follows the writer: a region that became the writer by a
//! failover takes the lost writer's database shape while it absorbs the
//! lost region's orders, and returns to its own spec once the fleet is
//! whole (what AWS's Application Recovery Controller Region switch calls
//! Aurora provisioned scaling).
//!
//! Pure: the controller hands the result to the Aurora concern as the
//! region's effective spec, so the plan raises readers and replaces them
//! with the larger class the way it applies any spec change.

use crate::api::{DatabaseSpec, ShopRegionSpec};

/// The shape to hold now, when it differs from the spec's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaisedShape {
    pub instance_class: String,
    pub readers: u8,
    /// The lost writer region the shape is taken from.
    pub for_region: String,
}

/// Pure: the shape this region holds while it absorbs `lost_writer` (the
/// region the last failover moved the writer away from, with its spec).
/// `spec.database.writerInstanceClass` overrides the class; without it the
/// larger of the two classes wins (by size within the naming scheme
/// `db.<family>.<size>`; an unknown size never raises). Readers take the
/// larger count. `None` when nothing is raised.
pub fn raised_shape(
    spec: &ShopRegionSpec,
    lost_writer: &DatabaseSpec,
    lost_region: &str,
) -> Option<RaisedShape> {
    let own = &spec.database;
    let instance_class = match &own.writer_instance_class {
        Some(class) => class.clone(),
        None if size_rank(&lost_writer.instance_class) > size_rank(&own.instance_class) => {
            lost_writer.instance_class.clone()
        }
        None => own.instance_class.clone(),
    };
    let readers = own.readers.max(lost_writer.readers);
    (instance_class != own.instance_class || readers != own.readers).then(|| RaisedShape {
        instance_class,
        readers,
        for_region: lost_region.to_string(),
    })
}

/// The spec the Aurora concern works to: the spec, with a raised shape.
pub fn effective_spec(spec: &ShopRegionSpec, raised: Option<&RaisedShape>) -> ShopRegionSpec {
    let mut effective = spec.clone();
    if let Some(raised) = raised {
        effective.database.instance_class = raised.instance_class.clone();
        effective.database.readers = raised.readers;
    }
    effective
}

/// Orders instance sizes: `micro` < `small` < `medium` < `large` <
/// `xlarge` < `2xlarge` < … `48xlarge`. `None` for a size it does not know.
pub fn size_rank(class: &str) -> Option<u32> {
    let size = class.rsplit('.').next()?;
    match size {
        "micro" => Some(1),
        "small" => Some(2),
        "medium" => Some(3),
        "large" => Some(4),
        "xlarge" => Some(8),
        other => other
            .strip_suffix("xlarge")
            .and_then(|n| n.parse::<u32>().ok())
            .map(|n| 8 * n),
    }
}

/// Whether `running` is a larger class than `wanted`: a spec change that
/// would shrink a writer under load.
pub fn is_downgrade(wanted: &str, running: &str) -> bool {
    matches!((size_rank(wanted), size_rank(running)), (Some(w), Some(r)) if w < r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::acme;

    #[test]
    fn sizes_are_ordered_as_aws_names_them() {
        let ranks: Vec<Option<u32>> = [
            "db.t4g.medium",
            "db.r6g.large",
            "db.r6g.xlarge",
            "db.r6g.2xlarge",
            "db.r7g.16xlarge",
        ]
        .iter()
        .map(|c| size_rank(c))
        .collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
        assert_eq!(size_rank("db.r6g.huge"), None);
    }

    #[test]
    fn a_smaller_survivor_takes_the_lost_writers_class_and_readers() {
        let mut survivor = acme("eu-west-1");
        survivor.database.instance_class = "db.r6g.large".into();
        survivor.database.readers = 1;
        let mut lost = acme("us-east-1").database;
        lost.instance_class = "db.r6g.4xlarge".into();
        lost.readers = 3;
        let raised = raised_shape(&survivor, &lost, "us-east-1").unwrap();
        assert_eq!(raised.instance_class, "db.r6g.4xlarge");
        assert_eq!(raised.readers, 3);
        let effective = effective_spec(&survivor, Some(&raised));
        assert_eq!(effective.database.instance_class, "db.r6g.4xlarge");
        assert_eq!(effective.database.readers, 3);
    }

    #[test]
    fn writer_instance_class_overrides_and_a_larger_survivor_is_left_alone() {
        let mut survivor = acme("eu-west-1");
        survivor.database.writer_instance_class = Some("db.r6g.2xlarge".into());
        let lost = acme("us-east-1").database;
        assert_eq!(
            raised_shape(&survivor, &lost, "us-east-1")
                .unwrap()
                .instance_class,
            "db.r6g.2xlarge"
        );
        let mut big = acme("eu-west-1");
        big.database.instance_class = "db.r6g.8xlarge".into();
        big.database.readers = 4;
        assert_eq!(raised_shape(&big, &lost, "us-east-1"), None);
    }

    #[test]
    fn a_lower_class_than_the_running_one_is_a_downgrade() {
        assert!(is_downgrade("db.r6g.large", "db.r6g.2xlarge"));
        assert!(!is_downgrade("db.r6g.2xlarge", "db.r6g.large"));
        assert!(!is_downgrade("db.r6g.odd", "db.r6g.large"));
    }
}
