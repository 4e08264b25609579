//! A small JSON writer for the report: the wasm module carries no JSON
//! library (the JS side reads the text with `JSON.parse`), and numbers go
//! out as JavaScript writes them ([`ms_text`]) without Rust's float
//! formatting.

use crate::driver::ms_text;

/// Appends to a string; the caller keeps commas and nesting right with
/// [`Json::key`] and [`Json::item`].
#[derive(Debug, Default)]
pub struct Json {
    pub out: String,
    /// Per open object/array: whether it has a member yet.
    open: Vec<bool>,
}

impl Json {
    fn comma(&mut self) {
        if let Some(has) = self.open.last_mut() {
            if *has {
                self.out.push(',');
            }
            *has = true;
        }
    }

    pub fn begin_object(&mut self) -> &mut Self {
        self.out.push('{');
        self.open.push(false);
        self
    }

    pub fn end_object(&mut self) -> &mut Self {
        self.open.pop();
        self.out.push('}');
        self
    }

    pub fn begin_array(&mut self) -> &mut Self {
        self.out.push('[');
        self.open.push(false);
        self
    }

    pub fn end_array(&mut self) -> &mut Self {
        self.open.pop();
        self.out.push(']');
        self
    }

    /// A member's name; its value follows.
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.comma();
        self.string_raw(k);
        self.out.push(':');
        self
    }

    /// An array element follows.
    pub fn item(&mut self) -> &mut Self {
        self.comma();
        self
    }

    pub fn string(&mut self, s: &str) -> &mut Self {
        self.string_raw(s);
        self
    }

    pub fn opt_string(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.string(s),
            None => self.null(),
        }
    }

    pub fn null(&mut self) -> &mut Self {
        self.out.push_str("null");
        self
    }

    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.out.push_str(if b { "true" } else { "false" });
        self
    }

    pub fn int(&mut self, n: i64) -> &mut Self {
        self.out.push_str(&n.to_string());
        self
    }

    /// Milliseconds (or any non-negative number with up to three decimals).
    pub fn ms(&mut self, ms: Option<f64>) -> &mut Self {
        match ms {
            Some(ms) if ms.is_finite() && ms >= 0.0 => {
                let t = ms_text(ms);
                self.out.push_str(&t);
                self
            }
            _ => self.null(),
        }
    }

    /// `[ "a", "b" ]`.
    pub fn strings<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.begin_array();
        for s in v {
            self.item().string(s.as_ref());
        }
        self.end_array()
    }

    pub fn ints(&mut self, v: &[u32]) -> &mut Self {
        self.begin_array();
        for n in v {
            self.item().int(i64::from(*n));
        }
        self.end_array()
    }

    fn string_raw(&mut self, s: &str) {
        crate::wire::json_string(&mut self.out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json_with_escapes_and_js_numbers() {
        let mut j = Json::default();
        j.begin_object();
        j.key("s").string("a\"b\\c\n\u{1}é");
        j.key("n").ms(Some(12.5));
        j.key("none").ms(None);
        j.key("list").strings(&["x", "y"]);
        j.key("ids").ints(&[1, 2]);
        j.key("o").begin_object().key("t").bool(true).key("f").null().end_object();
        j.end_object();
        let v: serde_json::Value = serde_json::from_str(&j.out).expect("valid JSON");
        assert_eq!(v["s"], "a\"b\\c\n\u{1}é");
        assert_eq!(v["n"], 12.5);
        assert!(v["none"].is_null());
        assert_eq!(v["list"][1], "y");
        assert_eq!(v["o"]["t"], true);
    }
}
