//! The simulated cloud's state on disk (`run --cloud simulated
//! --sim-state FILE`): AWS outlives the operator, so a restarted operator
//! must find the clusters its predecessor created, as it would in AWS.
//! Written after every mutating call (a crash loses nothing the operator
//! was told), read once at start.

use std::path::Path;

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::World;

/// What is saved: the world and the virtual instant it was saved at, with
/// the wall-clock instant, so that time the operator was down also passes
/// in the simulated cloud.
#[derive(Deserialize)]
pub(crate) struct Snapshot {
    pub virtual_at: Timestamp,
    pub wall_at: Timestamp,
    pub world: World,
}

/// [`Snapshot`] as it is written, without copying the world.
#[derive(Serialize)]
pub(crate) struct SnapshotRef<'a> {
    pub virtual_at: Timestamp,
    pub wall_at: Timestamp,
    pub world: &'a World,
}

/// Writes atomically (a temporary file renamed over the old one), so a
/// crash mid-write leaves the previous snapshot.
pub(crate) fn save(path: &Path, snapshot: &SnapshotRef<'_>) -> std::io::Result<()> {
    let text = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

pub(crate) fn load(path: &Path) -> std::io::Result<Option<Snapshot>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A map whose keys are not strings (`(region, id)`), saved as a list of
/// `[key, value]` entries: JSON objects only have string keys.
pub(crate) mod entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K, V, S>(map: &BTreeMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize,
        V: Serialize,
        S: Serializer,
    {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Fault, SimCloud};
    use crate::clock::Clock;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn the_simulated_cloud_outlives_the_process_and_its_time_moves_on() {
        let dir = std::env::temp_dir().join(format!("shopfleet-sim-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cloud.json");
        let _ = std::fs::remove_file(&path);
        let start = Timestamp::from_second(1_735_689_600).unwrap();
        let first = SimCloud::persistent(&path, start, 60).unwrap();
        first.inject(Fault::RegionOutage {
            region: "us-east-1".into(),
        });
        let virtual_then = first.clock().now();
        drop(first);
        // Ten wall seconds later at 60x: ten virtual minutes have passed.
        let later = start.checked_add(Duration::from_secs(10)).unwrap();
        let second = SimCloud::persistent(&path, later, 60).unwrap();
        assert!(second.is_region_out("us-east-1"));
        let moved = second
            .clock()
            .now()
            .duration_since(virtual_then)
            .unsigned_abs();
        assert!(moved >= Duration::from_secs(590), "{moved:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
