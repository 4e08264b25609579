//! Which mechanisms `login()` may use, strongest first: what the server
//! offers (CAPA's SASL list, APOP when the greeting has a valid timestamp,
//! USER when CAPA lists it or there is no CAPA at all), less the ones that
//! would put the password on the wire readable where that is not allowed.
//! `Session::login_mechanisms` applies it to a session; the wasm face's
//! `login()` takes the first, and `loginMechanisms` shows the list.

use super::capability::Capabilities;

/// The order `login()` prefers: strongest first.
pub const PREFERENCE: [&str; 7] =
    ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "APOP", "PLAIN", "LOGIN", "USER"];

/// Mechanisms that put the password (or a bearer token) on the wire as is:
/// without TLS to the server they need `allowInsecureAuth`.
pub fn readable(mechanism: &str) -> bool {
    matches!(mechanism, "PLAIN" | "LOGIN" | "USER" | "XOAUTH2" | "OAUTHBEARER")
}

/// The mechanisms of [`PREFERENCE`] the server offers, strongest first.
/// `caps`: the latest CAPA (`None`: the server has none, RFC 1939 only);
/// `apop_usable`: the greeting carries a valid APOP timestamp.
pub fn offered_mechanisms(caps: Option<&Capabilities>, apop_usable: bool) -> Vec<&'static str> {
    // No CAPA at all: an RFC 1939 server, USER/PASS is all there is.
    let user = caps.is_none_or(|c| c.user || c.raw.is_empty());
    PREFERENCE
        .iter()
        .copied()
        .filter(|m| match *m {
            "APOP" => apop_usable,
            "USER" => user,
            m => caps.is_some_and(|c| c.sasl.iter().any(|s| s == m)),
        })
        .collect()
}

/// `offered` less the readable ones, unless `readable_allowed` (TLS to
/// the server, or the caller's `allowInsecureAuth`).
pub fn usable_mechanisms(offered: &[&'static str], readable_allowed: bool) -> Vec<&'static str> {
    offered.iter().copied().filter(|m| readable_allowed || !readable(m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongest_first_and_readable_ones_only_when_allowed() {
        let caps = Capabilities::parse(b"USER\r\nSASL PLAIN LOGIN SCRAM-SHA-256 CRAM-MD5 GSSAPI\r\n");
        let offered = offered_mechanisms(Some(&caps), true);
        assert_eq!(offered, ["SCRAM-SHA-256", "CRAM-MD5", "APOP", "PLAIN", "LOGIN", "USER"]);
        assert_eq!(usable_mechanisms(&offered, false), ["SCRAM-SHA-256", "CRAM-MD5", "APOP"]);
        assert_eq!(usable_mechanisms(&offered, true), offered);
    }

    #[test]
    fn without_capa_user_pass_is_all_there_is() {
        assert_eq!(offered_mechanisms(None, false), ["USER"]);
        assert_eq!(offered_mechanisms(Some(&Capabilities::parse(b"")), false), ["USER"]);
        // A CAPA that lists neither USER nor SASL offers nothing.
        assert!(offered_mechanisms(Some(&Capabilities::parse(b"TOP\r\nUIDL\r\n")), false).is_empty());
    }
}
