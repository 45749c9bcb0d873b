//! A minimal JSON object writer for the hottest response. It writes exactly
//! what `serde_json` would for the same fields (a test holds it to that), but
//! it checks each string once for characters that need escaping instead of
//! escaping byte by byte, which most of our strings (UUIDs, hex, base64url,
//! validated codes) never need.

/// Writes one JSON object, member by member, in call order.
#[derive(Debug)]
pub struct ObjectWriter {
    out: Vec<u8>,
    empty: bool,
}

impl ObjectWriter {
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Self { out, empty: true }
    }

    fn key(&mut self, key: &'static str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        string(&mut self.out, key);
        self.out.push(b':');
    }

    pub fn str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        string(&mut self.out, value);
    }

    pub fn bool(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    pub fn strs<'a>(&mut self, key: &'static str, values: impl IntoIterator<Item = &'a str>) {
        self.key(key);
        self.out.push(b'[');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            string(&mut self.out, value);
        }
        self.out.push(b']');
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

/// Appends `value` as a JSON string, escaped as `serde_json` escapes: `"`,
/// `\` and control characters; everything else (including non-ASCII) as is.
fn string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    let bytes = value.as_bytes();
    if bytes.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        for &b in bytes {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                0x00..=0x1f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
                _ => out.push(b),
            }
        }
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn strings_are_written_exactly_as_serde_json_writes_them(value in any::<String>(), list in proptest::collection::vec(any::<String>(), 0..4)) {
            let mut writer = ObjectWriter::with_capacity(64);
            writer.str("a", &value);
            writer.bool("b", true);
            writer.strs("c", list.iter().map(String::as_str));
            writer.bool("d", false);
            let ours = writer.finish();
            let reference = format!(
                "{{\"a\":{},\"b\":true,\"c\":{},\"d\":false}}",
                serde_json::to_string(&value).expect("string"),
                serde_json::to_string(&list).expect("list"),
            );
            prop_assert_eq!(String::from_utf8(ours).expect("utf8"), reference);
        }
    }

    #[test]
    fn empty_object() {
        assert_eq!(ObjectWriter::with_capacity(2).finish(), b"{}");
    }
}
