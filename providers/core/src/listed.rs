//! A listing as the provider hands it over: each resource held as its
//! compact JSON text, not as a [`Props`] map.
//!
//! Why: a map keeps every key as its own allocation beside every value, about
//! 1.6 KB per EC2 resource, three times its text. A sync round lists every
//! type at once and each listing pages in while the others do; held as maps,
//! the listings of 100,000 resources were most of a round's peak memory
//! (issue #15). The engine parses a listing back into maps only when it is
//! about to compare it, under the round's budget.

use crate::Props;

/// The resources of one listing, in the order the cloud gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    text: Vec<Box<str>>,
}

impl Listed {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `p` as text; the map is freed here, as each resource arrives.
    pub fn push(&mut self, p: Props) {
        let text = serde_json::to_string(&p).expect("a JSON map always serialises");
        self.text.push(text.into_boxed_str());
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Each resource parsed back, one at a time.
    pub fn iter(&self) -> impl Iterator<Item = Props> + '_ {
        self.text.iter().map(|t| parse(t))
    }

    /// Every resource parsed back, freeing each text as it is parsed.
    pub fn into_props(self) -> Vec<Props> {
        self.into_iter().collect()
    }
}

impl IntoIterator for Listed {
    type Item = Props;
    type IntoIter = std::iter::Map<std::vec::IntoIter<Box<str>>, fn(Box<str>) -> Props>;

    /// Each resource parsed back as it is reached.
    fn into_iter(self) -> Self::IntoIter {
        self.text.into_iter().map(|t| parse(&t))
    }
}

fn parse(text: &str) -> Props {
    serde_json::from_str(text).expect("text serialised from a JSON map parses")
}

impl FromIterator<Props> for Listed {
    fn from_iter<I: IntoIterator<Item = Props>>(iter: I) -> Self {
        let mut listed = Listed::new();
        for p in iter {
            listed.push(p);
        }
        listed
    }
}

impl From<Vec<Props>> for Listed {
    fn from(props: Vec<Props>) -> Self {
        props.into_iter().collect()
    }
}

impl Extend<Props> for Listed {
    fn extend<I: IntoIterator<Item = Props>>(&mut self, iter: I) {
        for p in iter {
            self.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn every_json_value_comes_back_as_it_went_in() {
        let resources = vec![
            props(json!({"id": "sg-1", "n": 443, "tags": {"a": "b"}, "none": null})),
            props(
                json!({"id": "sg-2", "cidrs": ["10.0.0.0/8"], "ok": true, "f": 0.1, "big": u64::MAX, "neg": -7}),
            ),
            props(json!({})),
        ];
        let listed = Listed::from(resources.clone());
        assert_eq!(listed.len(), 3);
        assert_eq!(listed.iter().collect::<Vec<_>>(), resources);
        assert_eq!(listed.into_props(), resources);
    }
}
