//! YAML request bodies read the way the real API server reads them:
//! `sigs.k8s.io/yaml` on go-yaml v2, i.e. YAML 1.1 resolution of plain
//! scalars (`y`, `Yes`, `ON`, `off`... are booleans, `010` is octal, `1_000`
//! is an integer, timestamps stay strings), non-string keys turned into
//! strings, merge keys (`<<`) expanded, the first document only.
//!
//! Built on the event parser that `serde-saphyr` re-exports, which reports
//! the style of each scalar (only plain scalars are resolved).

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// Parses the first YAML document of `text` into JSON.
pub(crate) fn from_str(text: &str) -> Result<Value, String> {
    let mut events = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, _) = item.map_err(|e| e.to_string())?;
        match event {
            Event::DocumentEnd | Event::StreamEnd if !events.is_empty() => break,
            Event::Scalar(text, style, anchor, tag) => events.push(Node::Scalar {
                text: text.into_owned(),
                plain: style == ScalarStyle::Plain,
                tag: tag.map(|t| t.suffix().to_string()),
                anchor,
            }),
            Event::SequenceStart(_, anchor, _) => events.push(Node::SeqStart(anchor)),
            Event::SequenceEnd => events.push(Node::End),
            Event::MappingStart(_, anchor, _) => events.push(Node::MapStart(anchor)),
            Event::MappingEnd => events.push(Node::End),
            Event::Alias(id) => events.push(Node::Alias(id)),
            _ => {}
        }
    }
    if events.is_empty() {
        return Ok(Value::Null);
    }
    let mut reader = Reader {
        events: events.into_iter(),
        anchors: HashMap::new(),
    };
    reader.node()
}

enum Node {
    Scalar {
        text: String,
        plain: bool,
        tag: Option<String>,
        anchor: usize,
    },
    SeqStart(usize),
    MapStart(usize),
    End,
    Alias(usize),
}

struct Reader {
    events: std::vec::IntoIter<Node>,
    anchors: HashMap<usize, Value>,
}

impl Reader {
    fn node(&mut self) -> Result<Value, String> {
        match self.events.next() {
            Some(Node::Scalar {
                text,
                plain,
                tag,
                anchor,
            }) => {
                let v = resolve(&text, plain, tag.as_deref())?;
                self.remember(anchor, &v);
                Ok(v)
            }
            Some(Node::SeqStart(anchor)) => {
                let mut items = Vec::new();
                while let Some(v) = self.item()? {
                    items.push(v);
                }
                let v = Value::Array(items);
                self.remember(anchor, &v);
                Ok(v)
            }
            Some(Node::MapStart(anchor)) => {
                let mut map = Map::new();
                let mut merged = Vec::new();
                while let Some(key) = self.item()? {
                    let value = self.node()?;
                    if key == Value::String("<<".into()) {
                        merged.push(value);
                        continue;
                    }
                    map.insert(key_string(&key), value);
                }
                // Keys of the mapping win over merged ones; earlier merged maps
                // over later ones.
                for m in merged {
                    let sources = match m {
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    for source in sources {
                        let Value::Object(source) = source else {
                            return Err(
                                "map merge requires map or sequence of maps as the value".into()
                            );
                        };
                        for (k, v) in source {
                            map.entry(k).or_insert(v);
                        }
                    }
                }
                let v = Value::Object(map);
                self.remember(anchor, &v);
                Ok(v)
            }
            Some(Node::Alias(id)) => self
                .anchors
                .get(&id)
                .cloned()
                .ok_or_else(|| "unknown anchor referenced".to_string()),
            Some(Node::End) | None => Err("unexpected end of YAML".into()),
        }
    }

    /// The next item of a sequence or mapping, or `None` at its end.
    fn item(&mut self) -> Result<Option<Value>, String> {
        if matches!(self.events.as_slice().first(), Some(Node::End)) {
            self.events.next();
            return Ok(None);
        }
        self.node().map(Some)
    }

    fn remember(&mut self, anchor: usize, v: &Value) {
        if anchor != 0 {
            self.anchors.insert(anchor, v.clone());
        }
    }
}

/// How `sigs.k8s.io/yaml` turns a non-string key into a JSON object key.
fn key_string(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !(n.is_i64() || n.is_u64()) => crate::gofmt::go_float(f),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// go-yaml v2's `resolve` for one scalar.
fn resolve(text: &str, plain: bool, tag: Option<&str>) -> Result<Value, String> {
    let s = Value::String(text.to_string());
    match tag {
        Some("str") | Some("binary") => return Ok(s),
        Some(_) => {}
        None if !plain => return Ok(s),
        None => {}
    }
    let first = text.as_bytes().first().copied();
    let hint = match first {
        None => b'M',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        _ => return Ok(s),
    };
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Value::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Value::Bool(false));
        }
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => {
            return Err(format!("json: unsupported value: {text}"));
        }
        _ => {}
    }
    match hint {
        b'.' => Ok(text.parse::<f64>().ok().map(float).unwrap_or(s)),
        b'D' | b'S' => {
            // Timestamps are strings here: sigs.k8s.io/yaml keeps their text.
            let digits = text.replace('_', "");
            // Signed and prefixed forms (`-0b101`, `0x1F`, `010`) included.
            if let Some(i) = go_parse_int(&digits) {
                return Ok(Value::from(i));
            }
            if let Some(u) = go_parse_uint(&digits) {
                return Ok(Value::from(u));
            }
            if yaml_style_float(&digits)
                && let Ok(f) = digits.parse::<f64>()
            {
                return Ok(float(f));
            }
            Ok(s)
        }
        _ => Ok(s),
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, then `0x`, `0o`, `0b` or a
/// leading `0` (octal) prefix.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = go_parse_uint(rest)?;
    if neg {
        if magnitude == 1u64 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(magnitude).ok().map(|m| -m)
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`.
fn go_parse_uint(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// go-yaml v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && frac.bytes().all(|b| b.is_ascii_digit()),
        None => digits(mantissa),
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_scalars_resolve_like_go_yaml_v2() {
        // What a v1.36 kube-apiserver made of these values in an apply body.
        let v = from_str(
            "a: y\nb: Yes\nc: yEs\nd: 2001-12-14\ne: 08\nf: 0o17\ng: 1_000\nh: .5\ni: +12\nj: 0b101\nk: 1e3\nl: Null\nm: NO\nn8: 010\no: 0x1F\np: 1.5\nq: 3000000000000\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"a": true, "b": true, "c": "yEs", "d": "2001-12-14", "e": 8.0, "f": 15,
                "g": 1000, "h": 0.5, "i": 12, "j": 5, "k": 1000.0, "l": null, "m": false,
                "n8": 8, "o": 31, "p": 1.5, "q": 3_000_000_000_000i64})
        );
    }

    #[test]
    fn quoted_block_and_tagged_scalars_stay_strings() {
        let v = from_str("k: !!str yes\nl: 'no'\nm: |\n  yes\nq: \"y\"\n").unwrap();
        assert_eq!(v, json!({"k": "yes", "l": "no", "m": "yes\n", "q": "y"}));
    }

    #[test]
    fn keys_become_strings_and_merge_keys_merge() {
        let v = from_str("on: x\nn: 0\n1: y\nbase: &b {a: 1, b: 2}\nderived:\n  <<: *b\n  b: 3\n")
            .unwrap();
        assert_eq!(
            v,
            json!({"true": "x", "false": 0, "1": true, "base": {"a": 1, "b": 2}, "derived": {"a": 1, "b": 3}})
        );
    }

    #[test]
    fn only_the_first_document_is_read() {
        assert_eq!(from_str("a: 1\n---\nb: 2\n").unwrap(), json!({"a": 1}));
    }
}
