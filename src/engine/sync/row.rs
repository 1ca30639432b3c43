//! A region's row as the round holds it: the JSON text PostgreSQL sent
//! (`to_jsonb(t)::text`), parsed only while it is compared.
//!
//! A parsed row (`Props`: a map of `String` keys to `Value`s, a node per
//! column) takes several times the memory of its text. A steady round of a
//! 40,000-resource pair holds every row of the region while it compares
//! them with the listing, so text is what keeps that round's peak RSS down
//! (issue #15); each row is parsed once per comparison and dropped.

use infrasql_provider::Props;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct RowText(Box<str>);

impl RowText {
    pub fn new(json: &str) -> Self {
        Self(json.into())
    }

    /// The row's columns. PostgreSQL wrote the text, so it is a JSON
    /// object; anything else reads as a row without columns.
    pub fn props(&self) -> Props {
        match serde_json::from_str(&self.0) {
            Ok(Value::Object(m)) => m,
            _ => Props::new(),
        }
    }
}

impl From<&Props> for RowText {
    fn from(p: &Props) -> Self {
        Self(serde_json::to_string(p).unwrap_or_default().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_back_as_written() {
        let p: Props = serde_json::from_str(r#"{"a": 1, "tags": {"k": "v"}}"#).unwrap();
        assert_eq!(RowText::from(&p).props(), p);
        assert_eq!(RowText::new("[1]").props(), Props::new());
        assert_eq!(RowText::new("not json").props(), Props::new());
    }
}
