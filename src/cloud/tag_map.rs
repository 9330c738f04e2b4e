//! [`Tags`]: a resource's tags, immutable and shared.
//!
//! Every region-wide listing carries the tags of every resource it lists,
//! and a listing is taken again every few seconds. As a `BTreeMap` of
//! `String`s, each copy of a shopfleet resource's four tags was a node with
//! room for eleven pairs plus eight strings: at 100 shops the tags were a
//! fifth of the operator's heap (heaptrack, ~6 KB per ShopRegion), most of
//! it copies of the same tags in each listing. Here a copy is a reference
//! count, and the tags themselves an exact-size slice of exact-size
//! strings.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// AWS resource tags, sorted by key, each key once. Cloning shares them;
/// a change builds new ones (tags change only by a tagging call).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Tags(Arc<[(Box<str>, Box<str>)]>);

impl Tags {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        Some(&*self.0[i].1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(|(k, _)| &**k)
    }

    /// Sets `key` to `value`, replacing its value if it has one.
    pub fn insert(&mut self, key: String, value: String) {
        self.extend([(key, value)]);
    }

    pub fn clear(&mut self) {
        *self = Self::new();
    }
}

impl FromIterator<(String, String)> for Tags {
    /// A key given twice keeps its last value, as a map's would.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        // Inserted one by one: a later value replaces an earlier one.
        let mut sorted = BTreeMap::new();
        sorted.extend(pairs);
        Self(
            sorted
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        )
    }
}

impl<const N: usize> From<[(String, String); N]> for Tags {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for Tags {
    fn from(map: BTreeMap<String, String>) -> Self {
        map.into_iter().collect()
    }
}

impl Extend<(String, String)> for Tags {
    /// Builds new tags: the ones this was shared with keep what they had.
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, pairs: I) {
        let owned = self.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        *self = owned.chain(pairs).collect();
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Box<str>, Box<str>)>,
        fn(&'a (Box<str>, Box<str>)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl IntoIterator for Tags {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// As a map, the form a saved simulated world has always had.
impl serde::Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn tags_read_like_a_sorted_map_whatever_order_they_were_given_in() {
        let tags = Tags::from([pair("b", "2"), pair("a", "1"), pair("b", "3")]);
        assert_eq!(tags.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "3")]);
        assert_eq!(tags.get("b"), Some("3"));
        assert_eq!(tags.get("c"), None);
        assert_eq!(tags.len(), 2);
        assert_eq!(format!("{tags:?}"), r#"{"a": "1", "b": "3"}"#);
    }

    #[test]
    fn changing_tags_leaves_the_copies_taken_before_as_they_were() {
        let listed = Tags::from([pair("team", "orders")]);
        let mut resource = listed.clone();
        resource.extend([pair("team", "payments"), pair("cost-center", "shop")]);
        resource.insert("env".into(), "prod".into());
        assert_eq!(listed.get("team"), Some("orders"));
        assert_eq!(listed.len(), 1);
        assert_eq!(
            resource.keys().collect::<Vec<_>>(),
            ["cost-center", "env", "team"]
        );
        assert_eq!(resource.get("team"), Some("payments"));
    }

    #[test]
    fn tags_are_saved_as_a_map_and_read_back_from_one() {
        let tags = Tags::from([pair("shopfleet.io/shop", "acme"), pair("a", "")]);
        let json = serde_json::to_string(&tags).unwrap();
        assert_eq!(json, r#"{"a":"","shopfleet.io/shop":"acme"}"#);
        assert_eq!(serde_json::from_str::<Tags>(&json).unwrap(), tags);
        assert_eq!(Tags::new(), serde_json::from_str("{}").unwrap());
    }
}
