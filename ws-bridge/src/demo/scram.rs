//! SCRAM-SHA-256, server side (RFC 5802, RFC 7677), for the demo mailbox.
//!
//! ```text
//!  client-first  n,,n=demo,r=<cnonce>          → Scram::start    → r=<cnonce><snonce>,s=<salt>,i=4096
//!  client-final  c=biws,r=<nonce>,p=<proof>    → Exchange::finish → v=<server signature>
//! ```
//!
//! The server keeps only `StoredKey` and `ServerKey`, never the password.
//! No channel binding (the demo's TLS ends in the bridge, not the client),
//! so a client that asks for it (`p=`) is refused.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const ITERATIONS: u32 = 4096;

/// What the server stores for one user.
#[derive(Clone)]
pub struct Credentials {
    pub salt: Vec<u8>,
    pub iterations: u32,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl Credentials {
    pub fn new(password: &str, salt: &[u8], iterations: u32) -> Credentials {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2::<HmacSha256>(password.as_bytes(), salt, iterations, &mut salted)
            .expect("HMAC takes any key length");
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let server_key = hmac(&salted, b"Server Key");
        Credentials { salt: salt.to_vec(), iterations, stored_key, server_key }
    }
}

/// Why an exchange failed. Every variant ends the exchange with `-ERR`.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    /// The message does not follow RFC 5802's grammar.
    Malformed,
    /// Channel binding or an authorization identity other than the user.
    Unsupported,
    /// Unknown user, wrong nonce or wrong proof: all look the same.
    Failed,
}

/// An exchange between the server-first and the client-final message.
#[derive(Debug)]
pub struct Exchange {
    username: String,
    nonce: String,
    auth_prefix: String,
}

/// Parses the client-first message and answers with the server-first
/// message. `lookup` gives the credentials of a user name; an unknown user
/// gets made-up credentials so that it fails only at the proof, like a
/// known one with a wrong password.
pub fn start(
    client_first: &[u8],
    server_nonce: &str,
    lookup: impl Fn(&str) -> Option<Credentials>,
) -> Result<(Exchange, String, Option<Credentials>), ScramError> {
    let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
    // gs2-header: ("n" | "y" | "p=…") "," [ "a=" authzid ] ","
    let mut parts = text.splitn(3, ',');
    let cbind = parts.next().ok_or(ScramError::Malformed)?;
    let authzid = parts.next().ok_or(ScramError::Malformed)?;
    let bare = parts.next().ok_or(ScramError::Malformed)?;
    match cbind {
        "n" | "y" => {}
        c if c.starts_with("p=") => return Err(ScramError::Unsupported),
        _ => return Err(ScramError::Malformed),
    }
    let mut attrs = bare.split(',');
    let username = attrs.next().and_then(|a| a.strip_prefix("n=")).ok_or(ScramError::Malformed)?;
    let username = decode_saslname(username)?;
    let client_nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or(ScramError::Malformed)?;
    if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
        return Err(ScramError::Malformed);
    }
    if !authzid.is_empty() {
        let authzid = authzid.strip_prefix("a=").ok_or(ScramError::Malformed)?;
        if decode_saslname(authzid)? != username {
            return Err(ScramError::Unsupported);
        }
    }
    let creds = lookup(&username);
    let shown = creds.clone().unwrap_or_else(|| Credentials::new("", username.as_bytes(), ITERATIONS));
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!("r={nonce},s={},i={}", B64.encode(&shown.salt), shown.iterations);
    let auth_prefix = format!("{bare},{server_first}");
    Ok((Exchange { username, nonce, auth_prefix }, server_first, creds))
}

impl Exchange {
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Checks the client-final message; on success returns the
    /// server-final message (`v=…`).
    pub fn finish(&self, client_final: &[u8], creds: Option<&Credentials>) -> Result<String, ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed)?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs.next().and_then(|a| a.strip_prefix("c=")).ok_or(ScramError::Malformed)?;
        let nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or(ScramError::Malformed)?;
        // "biws" = base64("n,,"), "eSws" = base64("y,,"): no channel binding data.
        if cbind != "biws" && cbind != "eSws" {
            return Err(ScramError::Unsupported);
        }
        let proof = B64.decode(proof).map_err(|_| ScramError::Malformed)?;
        let creds = creds.ok_or(ScramError::Failed)?;
        if nonce != self.nonce || proof.len() != 32 {
            return Err(ScramError::Failed);
        }
        let auth_message = format!("{},{without_proof}", self.auth_prefix);
        let client_signature = hmac(&creds.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(client_signature).map(|(p, s)| p ^ s).collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        if !constant_time_eq(&stored, &creds.stored_key) {
            return Err(ScramError::Failed);
        }
        let server_signature = hmac(&creds.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `=2C` → `,` and `=3D` → `=`; any other `=` is an error (RFC 5802 §5.1).
fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side of RFC 5802, just enough to drive the server.
    fn client_final(password: &str, client_first_bare: &str, server_first: &str) -> (String, String) {
        let mut salt = None;
        let mut iterations = 0;
        let mut nonce = "";
        for attr in server_first.split(',') {
            match attr.split_at(2) {
                ("r=", v) => nonce = v,
                ("s=", v) => salt = Some(B64.decode(v).unwrap()),
                ("i=", v) => iterations = v.parse().unwrap(),
                _ => {}
            }
        }
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2::<HmacSha256>(password.as_bytes(), &salt.unwrap(), iterations, &mut salted).unwrap();
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
        let server_key = hmac(&salted, b"Server Key");
        let expected_v = format!("v={}", B64.encode(hmac(&server_key, auth_message.as_bytes())));
        (format!("{without_proof},p={}", B64.encode(proof)), expected_v)
    }

    fn lookup(user: &str) -> Option<Credentials> {
        (user == "user").then(|| Credentials::new("pencil", b"salt-of-the-demo", ITERATIONS))
    }

    #[test]
    fn rfc7677_example_exchange_verifies() {
        // RFC 7677 §3: user "user", password "pencil", known salt and nonces.
        let creds = Credentials::new("pencil", &B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(), 4096);
        let (ex, server_first, creds) =
            start(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", |_| {
                Some(creds.clone())
            })
            .unwrap();
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let final_msg = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            ex.finish(final_msg, creds.as_ref()).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn right_password_gets_server_signature() {
        let bare = "n=user,r=abcdef";
        let (ex, server_first, creds) = start(format!("n,,{bare}").as_bytes(), "XYZ", lookup).unwrap();
        let (final_msg, expected_v) = client_final("pencil", bare, &server_first);
        assert_eq!(ex.finish(final_msg.as_bytes(), creds.as_ref()), Ok(expected_v));
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike() {
        let bare = "n=user,r=abcdef";
        let (ex, server_first, creds) = start(format!("n,,{bare}").as_bytes(), "XYZ", lookup).unwrap();
        let (final_msg, _) = client_final("wrong", bare, &server_first);
        assert_eq!(ex.finish(final_msg.as_bytes(), creds.as_ref()), Err(ScramError::Failed));

        let bare = "n=nobody,r=abcdef";
        let (ex, server_first, creds) = start(format!("n,,{bare}").as_bytes(), "XYZ", lookup).unwrap();
        assert!(server_first.contains(",i=4096"));
        let (final_msg, _) = client_final("pencil", bare, &server_first);
        assert_eq!(ex.finish(final_msg.as_bytes(), creds.as_ref()), Err(ScramError::Failed));
    }

    #[test]
    fn tampered_nonce_fails() {
        let bare = "n=user,r=abcdef";
        let (ex, server_first, creds) = start(format!("n,,{bare}").as_bytes(), "XYZ", lookup).unwrap();
        let (final_msg, _) = client_final("pencil", bare, &server_first.replace("XYZ", "XYQ"));
        assert_eq!(ex.finish(final_msg.as_bytes(), creds.as_ref()), Err(ScramError::Failed));
    }

    #[test]
    fn channel_binding_and_garbage_are_refused() {
        assert_eq!(start(b"p=tls-unique,,n=user,r=a", "x", lookup).unwrap_err(), ScramError::Unsupported);
        assert_eq!(start(b"n,a=admin,n=user,r=a", "x", lookup).unwrap_err(), ScramError::Unsupported);
        assert_eq!(start(b"n,,n=us=er,r=a", "x", lookup).unwrap_err(), ScramError::Malformed);
        assert_eq!(start(b"hello", "x", lookup).unwrap_err(), ScramError::Malformed);
        assert!(
            start(b"n,,n=a=2Cb=3Dc,r=a", "x", |u| {
                assert_eq!(u, "a,b=c");
                None
            })
            .is_ok()
        );
    }
}
