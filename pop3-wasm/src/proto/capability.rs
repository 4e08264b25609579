//! RFC 2449 capabilities, parsed from a CAPA answer.

use super::response::body_lines;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expire {
    Never,
    Days(u32),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Every line of the answer, as sent.
    pub raw: Vec<String>,
    pub top: bool,
    pub uidl: bool,
    pub user: bool,
    pub pipelining: bool,
    pub resp_codes: bool,
    /// RFC 3206 AUTH-RESP-CODE.
    pub auth_resp_code: bool,
    pub stls: bool,
    /// RFC 6856 UTF8, with its arguments (`USER`).
    pub utf8: Option<Vec<String>>,
    /// SASL mechanisms, upper case, in the server's order.
    pub sasl: Vec<String>,
    /// LOGIN-DELAY seconds (and whether it is per user: `USER` argument).
    pub login_delay: Option<(u32, bool)>,
    pub expire: Option<(Expire, bool)>,
    pub implementation: Option<String>,
    /// RFC 6856 LANG.
    pub lang: bool,
}

impl Capabilities {
    pub fn parse(body: &[u8]) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in body_lines(body) {
            let mut words = line.split_ascii_whitespace();
            let tag = words.next().unwrap_or("").to_ascii_uppercase();
            let args: Vec<String> = words.map(str::to_string).collect();
            let per_user = args.get(1).is_some_and(|a| a.eq_ignore_ascii_case("USER"));
            match tag.as_str() {
                "TOP" => caps.top = true,
                "UIDL" => caps.uidl = true,
                "USER" => caps.user = true,
                "PIPELINING" => caps.pipelining = true,
                "RESP-CODES" => caps.resp_codes = true,
                "AUTH-RESP-CODE" => caps.auth_resp_code = true,
                "STLS" => caps.stls = true,
                "UTF8" => caps.utf8 = Some(args.clone()),
                "LANG" => caps.lang = true,
                "SASL" => caps.sasl.extend(args.iter().map(|a| a.to_ascii_uppercase())),
                "LOGIN-DELAY" => {
                    if let Some(secs) = args.first().and_then(|a| a.parse().ok()) {
                        caps.login_delay = Some((secs, per_user));
                    }
                }
                "EXPIRE" => {
                    let value = match args.first().map(|a| a.to_ascii_uppercase()) {
                        Some(a) if a == "NEVER" => Some(Expire::Never),
                        Some(a) => a.parse().ok().map(Expire::Days),
                        None => None,
                    };
                    if let Some(v) = value {
                        caps.expire = Some((v, per_user));
                    }
                }
                "IMPLEMENTATION" => {
                    let text = line.trim_start()[tag.len()..].trim();
                    caps.implementation = Some(text.to_string());
                }
                _ => {}
            }
            caps.raw.push(line);
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2449_example_and_dovecot_style_list() {
        let body = b"TOP\r\nUSER\r\nSASL CRAM-MD5 KERBEROS_V4\r\nRESP-CODES\r\nLOGIN-DELAY 900\r\n\
PIPELINING\r\nEXPIRE 60\r\nUIDL\r\nIMPLEMENTATION Shlemazle-Plotz-v302\r\n";
        let c = Capabilities::parse(body);
        assert!(c.top && c.user && c.resp_codes && c.pipelining && c.uidl);
        assert_eq!(c.sasl, vec!["CRAM-MD5", "KERBEROS_V4"]);
        assert_eq!(c.login_delay, Some((900, false)));
        assert_eq!(c.expire, Some((Expire::Days(60), false)));
        assert_eq!(c.implementation.as_deref(), Some("Shlemazle-Plotz-v302"));
        assert!(!c.stls);
        assert_eq!(c.raw.len(), 9);

        let c = Capabilities::parse(b"CAPA\r\nSTLS\r\nUTF8 USER\r\nEXPIRE NEVER USER\r\nAUTH-RESP-CODE\r\n");
        assert!(c.stls && c.auth_resp_code);
        assert_eq!(c.utf8, Some(vec!["USER".to_string()]));
        assert_eq!(c.expire, Some((Expire::Never, true)));
    }
}
