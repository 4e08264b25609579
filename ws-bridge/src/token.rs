//! Access tokens: HMAC-SHA256 over an expiry and one destination.
//!
//! ```text
//! token   = base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))
//! payload = "1." EXPIRY "." PORT "." HOST      e.g. 1.1767225600.995.pop.example.com
//! ```
//!
//! EXPIRY is Unix seconds; HOST is canonical (lower-case name, or the IP
//! address in its usual spelling, IPv6 in brackets), so `POP.Example.com`
//! and `pop.example.com.` mint the same token. Verification needs only the
//! secret: any replica that has the file accepts any replica's tokens. The
//! secret file may hold several secrets, one per line: the first signs, all
//! verify, which lets an operator rotate without a flag day.

use std::{
    fmt,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::policy::Host;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Longest token looked at; anything longer is malformed.
const MAX_TOKEN_LEN: usize = 1024;

/// The signing and verifying secrets. `Debug` never shows them.
#[derive(Clone)]
pub struct TokenKeys {
    secrets: Vec<Vec<u8>>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKeys({} secret(s), redacted)", self.secrets.len())
    }
}

/// Why a token was refused. For the log only: the client is told "not allowed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Malformed,
    BadSignature,
    Expired,
    WrongDestination,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Missing => "no token",
            TokenError::Malformed => "malformed token",
            TokenError::BadSignature => "token signature does not verify",
            TokenError::Expired => "token expired",
            TokenError::WrongDestination => "token is for another destination",
        })
    }
}

impl TokenKeys {
    /// Secrets as given; each must be at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(secrets: Vec<Vec<u8>>) -> Result<TokenKeys, String> {
        if secrets.is_empty() {
            return Err("no secret found".into());
        }
        if secrets.iter().any(|s| s.len() < MIN_SECRET_LEN) {
            return Err(format!("every secret must be at least {MIN_SECRET_LEN} bytes"));
        }
        Ok(TokenKeys { secrets })
    }

    /// Reads secrets from a file: one per line, blank lines and `#`
    /// comments ignored, surrounding white space trimmed.
    pub fn from_file(path: &Path) -> Result<TokenKeys, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let secrets = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.as_bytes().to_vec())
            .collect();
        TokenKeys::new(secrets)
    }

    fn mac(secret: &[u8], data: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(data);
        mac
    }

    /// A token for `host:port`, valid until `expires`.
    pub fn mint(&self, host: &Host, port: u16, expires: SystemTime) -> String {
        let exp = expires.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        let payload = URL_SAFE_NO_PAD.encode(format!("1.{exp}.{port}.{host}"));
        let tag = Self::mac(&self.secrets[0], payload.as_bytes()).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks the signature (in constant time), then the expiry, then that
    /// the token names this destination.
    pub fn verify(&self, token: &str, host: &Host, port: u16, now: SystemTime) -> Result<(), TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload_b64, tag_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag_b64).map_err(|_| TokenError::Malformed)?;
        let signed = self
            .secrets
            .iter()
            .any(|secret| Self::mac(secret, payload_b64.as_bytes()).verify_slice(&tag).is_ok());
        if !signed {
            return Err(TokenError::BadSignature);
        }
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| TokenError::Malformed)?;
        let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let mut parts = payload.splitn(4, '.');
        let (Some("1"), Some(exp), Some(tok_port), Some(tok_host)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let exp: u64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        if now >= exp {
            return Err(TokenError::Expired);
        }
        let tok_port: u16 = tok_port.parse().map_err(|_| TokenError::Malformed)?;
        let tok_host = Host::parse(tok_host).ok_or(TokenError::Malformed)?;
        if tok_port != port || &tok_host != host {
            return Err(TokenError::WrongDestination);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> TokenKeys {
        TokenKeys::new(vec![s.repeat(32).into_bytes()]).unwrap()
    }

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn a_minted_token_verifies_for_its_destination_only() {
        let k = keys("a");
        let now = SystemTime::now();
        let t = k.mint(&host("POP.Example.com."), 995, now + Duration::from_secs(60));
        assert_eq!(k.verify(&t, &host("pop.example.com"), 995, now), Ok(()));
        assert_eq!(k.verify(&t, &host("pop.example.com"), 110, now), Err(TokenError::WrongDestination));
        assert_eq!(k.verify(&t, &host("imap.example.com"), 995, now), Err(TokenError::WrongDestination));
        let t6 = k.mint(&host("::1"), 110, now + Duration::from_secs(60));
        assert_eq!(k.verify(&t6, &host("[::1]"), 110, now), Ok(()));
        assert_eq!(k.verify(&t6, &host("::2"), 110, now), Err(TokenError::WrongDestination));
    }

    #[test]
    fn expired_forged_and_malformed_tokens_are_refused() {
        let k = keys("a");
        let now = SystemTime::now();
        let h = host("pop.example.com");
        let t = k.mint(&h, 995, now + Duration::from_secs(60));
        assert_eq!(k.verify(&t, &h, 995, now + Duration::from_secs(60)), Err(TokenError::Expired));
        assert_eq!(keys("b").verify(&t, &h, 995, now), Err(TokenError::BadSignature));
        // A payload changed after signing (longer expiry) no longer verifies.
        let (_, tag) = t.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("1.99999999999.995.pop.example.com"));
        assert_eq!(k.verify(&forged, &h, 995, now), Err(TokenError::BadSignature));
        for bad in ["", ".", "abc", "abc.!!!", &"a".repeat(2000)] {
            assert!(k.verify(bad, &h, 995, now).is_err(), "{bad}");
        }
        // A correctly signed but nonsensical payload is malformed.
        let payload = URL_SAFE_NO_PAD.encode("2.x.y.z");
        let tag =
            URL_SAFE_NO_PAD.encode(TokenKeys::mac(&k.secrets[0], payload.as_bytes()).finalize().into_bytes());
        assert_eq!(k.verify(&format!("{payload}.{tag}"), &h, 995, now), Err(TokenError::Malformed));
    }

    #[test]
    fn every_secret_in_the_file_verifies_and_the_first_signs() {
        let old = keys("o");
        let both = TokenKeys::new(vec!["n".repeat(32).into_bytes(), "o".repeat(32).into_bytes()]).unwrap();
        let now = SystemTime::now();
        let h = host("pop.example.com");
        let t = old.mint(&h, 995, now + Duration::from_secs(60));
        assert_eq!(both.verify(&t, &h, 995, now), Ok(()));
        let t = both.mint(&h, 995, now + Duration::from_secs(60));
        assert_eq!(old.verify(&t, &h, 995, now), Err(TokenError::BadSignature));
        assert!(TokenKeys::new(vec![b"short".to_vec()]).is_err());
        assert!(!format!("{both:?}").contains("nnnn"));
    }
}
