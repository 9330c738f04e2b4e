//! Just enough of two AWS wire formats to read what the adapter sends and
//! to forge what AWS answers: the `application/x-www-form-urlencoded` query
//! of RDS and ElastiCache, and the CBOR of CloudWatch's Smithy RPC v2
//! protocol.

use std::collections::BTreeMap;

use aws_sdk_rds::config::http::HttpRequest;
use aws_smithy_types::body::SdkBody;

/// What the adapter sent: the endpoint and the query parameters.
pub struct Sent {
    pub method: String,
    pub uri: String,
    pub params: BTreeMap<String, String>,
}

/// A captured query-protocol request (RDS, ElastiCache).
pub fn sent(request: &HttpRequest) -> Sent {
    Sent {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        params: form(request.body().bytes().expect("an in-memory body")),
    }
}

pub fn params<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn xml(status: u16, body: String) -> http::Response<SdkBody> {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(SdkBody::from(body))
        .unwrap()
}

/// A query-protocol success answer for `action` from the service whose XML
/// namespace is `xmlns`, with `result` inside its result element.
pub fn query_ok(xmlns: &str, action: &str, result: &str) -> http::Response<SdkBody> {
    xml(
        200,
        format!(
            r#"<{action}Response xmlns="{xmlns}"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>5d4c5f3e</RequestId></ResponseMetadata></{action}Response>"#
        ),
    )
}

/// A query-protocol error answer, as AWS sends them.
pub fn query_error(xmlns: &str, status: u16, code: &str, message: &str) -> http::Response<SdkBody> {
    xml(
        status,
        format!(
            r#"<ErrorResponse xmlns="{xmlns}"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>5d4c5f3e</RequestId></ErrorResponse>"#
        ),
    )
}

/// A CloudWatch answer in the Smithy RPC v2 CBOR protocol; an error carries
/// its query-compatible code in `x-amzn-query-error`.
pub fn cbor_response(
    status: u16,
    body: &Cbor,
    query_error: Option<&str>,
) -> http::Response<SdkBody> {
    let mut response = http::Response::builder()
        .status(status)
        .header("smithy-protocol", "rpc-v2-cbor")
        .header("content-type", "application/cbor");
    if let Some(code) = query_error {
        response = response.header("x-amzn-query-error", code);
    }
    response.body(SdkBody::from(body.encode())).unwrap()
}

/// The parameters of a form-encoded query (`Action=…&Version=…&…`).
pub fn form(body: &[u8]) -> BTreeMap<String, String> {
    let body = std::str::from_utf8(body).expect("a form body is ASCII");
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("two hex digits");
                out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}

/// A CBOR data item, as Smithy RPC v2 uses them (text map keys, epoch
/// timestamps as tag 1).
#[derive(Clone, Debug, PartialEq)]
pub enum Cbor {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Null,
    Array(Vec<Cbor>),
    Map(BTreeMap<String, Cbor>),
    /// Tag 1: seconds since the epoch.
    Timestamp(f64),
}

impl Cbor {
    pub fn map<const N: usize>(entries: [(&str, Cbor); N]) -> Self {
        Cbor::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    pub fn text(s: &str) -> Self {
        Cbor::Text(s.to_string())
    }

    /// `self[key]`, panicking with the map's content when absent.
    pub fn get(&self, key: &str) -> &Cbor {
        match self {
            Cbor::Map(m) => m.get(key).unwrap_or_else(|| panic!("no {key} in {self:?}")),
            other => panic!("{other:?} is not a map"),
        }
    }

    pub fn at(&self, index: usize) -> &Cbor {
        match self {
            Cbor::Array(items) => &items[index],
            other => panic!("{other:?} is not an array"),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(n) if *n >= 0 => head(out, 0, *n as u64),
            Cbor::Int(n) => head(out, 1, (-1 - *n) as u64),
            Cbor::Float(f) => {
                out.push(0xfb);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Cbor::Text(s) => {
                head(out, 3, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Cbor::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
            Cbor::Null => out.push(0xf6),
            Cbor::Array(items) => {
                head(out, 4, items.len() as u64);
                for item in items {
                    item.write(out);
                }
            }
            Cbor::Map(entries) => {
                head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    Cbor::Text(k.clone()).write(out);
                    v.write(out);
                }
            }
            Cbor::Timestamp(seconds) => {
                head(out, 6, 1);
                Cbor::Float(*seconds).write(out);
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Cbor {
        let mut reader = Reader { bytes, pos: 0 };
        let value = reader.item().expect("a data item, not a break");
        assert_eq!(reader.pos, bytes.len(), "trailing bytes after the item");
        value
    }
}

fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let major = major << 5;
    match arg {
        0..=23 => out.push(major | arg as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        slice
    }

    fn uint(&mut self, info: u8) -> u64 {
        match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)[0]),
            25 => u64::from(u16::from_be_bytes(self.take(2).try_into().unwrap())),
            26 => u64::from(u32::from_be_bytes(self.take(4).try_into().unwrap())),
            27 => u64::from_be_bytes(self.take(8).try_into().unwrap()),
            other => panic!("unsupported CBOR length encoding {other}"),
        }
    }

    /// `None` for the break that ends an indefinite-length item.
    fn item(&mut self) -> Option<Cbor> {
        let initial = self.take(1)[0];
        let (major, info) = (initial >> 5, initial & 0x1f);
        Some(match major {
            0 => Cbor::Int(i64::try_from(self.uint(info)).unwrap()),
            1 => Cbor::Int(-1 - i64::try_from(self.uint(info)).unwrap()),
            3 if info == 31 => {
                let mut text = String::new();
                while let Some(chunk) = self.item() {
                    let Cbor::Text(chunk) = chunk else {
                        panic!("a text chunk, got {chunk:?}")
                    };
                    text.push_str(&chunk);
                }
                Cbor::Text(text)
            }
            3 => {
                let len = self.uint(info) as usize;
                Cbor::Text(String::from_utf8(self.take(len).to_vec()).expect("UTF-8 text"))
            }
            4 => {
                let mut items = Vec::new();
                if info == 31 {
                    while let Some(item) = self.item() {
                        items.push(item);
                    }
                } else {
                    for _ in 0..self.uint(info) {
                        items.push(self.item().expect("an array item"));
                    }
                }
                Cbor::Array(items)
            }
            5 => {
                let mut entries = BTreeMap::new();
                let mut entry = |reader: &mut Self| -> bool {
                    let Some(key) = reader.item() else {
                        return false;
                    };
                    let Cbor::Text(key) = key else {
                        panic!("a text key, got {key:?}")
                    };
                    entries.insert(key, reader.item().expect("a map value"));
                    true
                };
                if info == 31 {
                    while entry(self) {}
                } else {
                    for _ in 0..self.uint(info) {
                        assert!(entry(self), "a map entry");
                    }
                }
                Cbor::Map(entries)
            }
            6 => {
                assert_eq!(self.uint(info), 1, "only timestamps are tagged");
                match self.item().expect("a tagged value") {
                    Cbor::Float(s) => Cbor::Timestamp(s),
                    Cbor::Int(s) => Cbor::Timestamp(s as f64),
                    other => panic!("a timestamp, got {other:?}"),
                }
            }
            7 => match info {
                20 => Cbor::Bool(false),
                21 => Cbor::Bool(true),
                22 | 23 => Cbor::Null,
                26 => Cbor::Float(f64::from(f32::from_be_bytes(
                    self.take(4).try_into().unwrap(),
                ))),
                27 => Cbor::Float(f64::from_be_bytes(self.take(8).try_into().unwrap())),
                31 => return None,
                other => panic!("unsupported CBOR simple value {other}"),
            },
            other => panic!("unsupported CBOR major type {other}"),
        })
    }
}
