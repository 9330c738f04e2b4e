//! How the real API server (Go) prints values in error messages: `%v` for
//! numbers and booleans, `%q` for strings, `encoding/json` for lists and maps
//! (apimachinery's `field.Error.ErrorBody`). Pure functions.

use serde_json::Value;

/// A JSON number as the API server holds it after decoding: `int64` when the
/// literal fits, `float64` otherwise (`sigs.k8s.io/json`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum GoNumber {
    Int(i64),
    Float(f64),
}

pub(crate) fn go_number(v: &Value) -> Option<GoNumber> {
    let n = v.as_number()?;
    match n.as_i64() {
        Some(i) => Some(GoNumber::Int(i)),
        None => n.as_f64().map(GoNumber::Float),
    }
}

impl GoNumber {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            GoNumber::Int(i) => i as f64,
            GoNumber::Float(f) => f,
        }
    }
}

/// `fmt.Sprintf("%v", f)` for a `float64`: the shortest representation, in
/// `%e` style when the decimal exponent is below -4 or at least 6 (Go's `%g`
/// with the shortest precision decides with 6), exponent of at least two digits.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (mantissa, exp) = sci_parts(f);
    if !(-4..6).contains(&exp) {
        format!("{mantissa}e{}", exponent(exp))
    } else {
        format!("{f}")
    }
}

/// A float as Go's `encoding/json` writes it: plain decimal, or `%e` style
/// (exponent without padding) below 1e-6 and from 1e21.
fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (mantissa, exp) = sci_parts(f);
        let sign = if exp < 0 { "-" } else { "+" };
        format!("{mantissa}e{sign}{}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Shortest round-trip digits as `(mantissa, exponent)`, e.g. `("1.5", 6)`.
fn sci_parts(f: f64) -> (String, i32) {
    let s = format!("{f:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    (m.to_string(), e.parse().unwrap_or(0))
}

fn exponent(exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{:02}", exp.abs())
}

/// What a value becomes once the real server has encoded it (Go's
/// `encoding/json` writes a whole `float64` without a fraction) and decoded
/// it again: whole numbers that fit an `int64` are integers.
pub(crate) fn round_trip_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.2e18
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(round_trip_numbers),
        Value::Object(map) => map.values_mut().for_each(round_trip_numbers),
        _ => {}
    }
}

/// `fmt.Sprintf("%v", n)` for a decoded JSON number.
pub(crate) fn go_num(n: GoNumber) -> String {
    match n {
        GoNumber::Int(i) => i.to_string(),
        GoNumber::Float(f) => go_float(f),
    }
}

/// `strconv.Quote(s)` (what `%q` prints): printable characters as they are,
/// the usual backslash escapes, `\xNN` for other ASCII controls and `\uNNNN`
/// for other non-printable characters.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x80 && (c.is_ascii_control()) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if !go_printable(c) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`, approximated: not a control, not a space other
/// than U+0020, not a format or private-use character.
fn go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
}

/// Go's `json.Marshal` of a decoded value: map keys sorted, no spaces, `<`,
/// `>`, `&`, U+2028 and U+2029 escaped.
pub(crate) fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(_) => match go_number(v) {
            Some(GoNumber::Int(i)) => out.push_str(&i.to_string()),
            Some(GoNumber::Float(f)) => out.push_str(&json_float(f)),
            None => out.push_str(&v.to_string()),
        },
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                        out.push_str(&format!("\\u{:04x}", c as u32));
                    }
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(&Value::String(k.clone()), out);
                out.push(':');
                write_json(&map[k], out);
            }
            out.push('}');
        }
    }
}

/// A bad value as apimachinery's `field.Error` prints it after
/// `Invalid value: ` (and the other value-carrying error types).
pub(crate) fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => go_number(v).map(go_num).unwrap_or_else(|| v.to_string()),
        Value::String(s) => go_quote(s),
        Value::Array(_) | Value::Object(_) => go_json(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_like_go_percent_v() {
        // Each pair was printed by the real API server (v1.36) in a validation message.
        for (f, go) in [
            (3e9, "3e+09"),
            (1234567.5, "1.2345675e+06"),
            (1e6, "1e+06"),
            (1.0, "1"),
            (1.5, "1.5"),
            (0.5, "0.5"),
            (7.5, "7.5"),
            (1e-7, "1e-07"),
            (100000.0, "100000"),
            (0.0001, "0.0001"),
        ] {
            assert_eq!(go_float(f), go, "{f}");
        }
    }

    #[test]
    fn strings_quote_like_go_strconv_quote() {
        assert_eq!(go_quote("\"\t"), r#""\"\t""#);
        assert_eq!(go_quote("\u{1}\u{7f}"), r#""\x01\x7f""#);
        assert_eq!(go_quote("é\u{a0}"), r#""é\u00a0""#);
        assert_eq!(go_quote("<&"), r#""<&""#);
    }

    #[test]
    fn compound_values_print_as_go_json() {
        assert_eq!(
            go_value(&json!({"b": 1.5, "a": "<x>"})),
            r#"{"a":"\u003cx\u003e","b":1.5}"#
        );
        assert_eq!(go_value(&json!({"name": "a"})), r#"{"name":"a"}"#);
        assert_eq!(go_value(&json!(["a", 1, null])), r#"["a",1,null]"#);
        assert_eq!(go_value(&json!(1e-7)), "1e-07");
        assert_eq!(go_json(&json!([1e-7, 1e21, 2.5])), "[1e-7,1e+21,2.5]");
    }

    #[test]
    fn whole_floats_come_back_as_integers() {
        let mut v = json!({"a": 2.0, "b": [3.0, 1.5, 1e21], "c": -0.0, "d": 7});
        round_trip_numbers(&mut v);
        assert_eq!(v, json!({"a": 2, "b": [3, 1.5, 1e21], "c": 0, "d": 7}));
    }
}
