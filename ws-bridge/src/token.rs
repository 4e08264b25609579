//! Access tokens: HMAC-SHA256 over an expiry and one destination: host,
//! port, TLS mode and where TLS ends.
//!
//! ```text
//! token   = base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))
//! payload = "2." EXPIRY "." PORT "." MODE "." HOST     e.g. 2.1767225600.995.implicit.pop.example.com
//! MODE    = "implicit" | "starttls" | "none"           TLS in the bridge (or none)
//!         | "e2e-implicit" | "e2e-starttls"            TLS in the client, the bridge relays TCP (wire v2)
//! ```
//!
//! EXPIRY is Unix seconds; MODE is the session's `tls` and its `endToEnd`
//! ([`Binding`]), so a token made for TLS on 995 does not open a
//! plain-text session; HOST is canonical (lower-case name, or the IP
//! address in its usual spelling, IPv6 in brackets), so `POP.Example.com`
//! and `pop.example.com.` mint the same token. A token whose expiry lies
//! further ahead than `token_max_ttl` is refused, whoever signed it.
//! Tokens of format 1 (no TLS mode) are refused.
//!
//! Why an end-to-end session needs a token of its own (`e2e-…`) and a
//! bridge-side one does not open it, nor the other way round: each mode
//! lets the holder do something the other does not. Bridge-side, the
//! bridge's rustls is the only TLS client the server meets and the bridge
//! checks the server's certificate (with the operator's `ca_file`); end to
//! end, the holder speaks TLS to the server directly (any ClientHello the
//! guard lets through, to a server the holder may not reach otherwise) and
//! nobody but the holder checks the certificate. The other way, a
//! bridge-side STLS session may send `USER`/`PASS` in plain text before
//! STLS, which an end-to-end one may not, and its password passes through
//! the bridge readable: an operator who mints end-to-end tokens promises
//! the token's users that it does not. So the TLS mode a token binds is
//! the mode the client asked for (`implicit` or `starttls`) together with
//! where TLS ends, and `ws-bridge token --tls MODE --end-to-end` mints the
//! end-to-end kind. (An older bridge reads `e2e-…` as malformed: it could
//! not relay end to end anyway.)
//!
//! Verification needs only the secret: any replica that has the file
//! accepts any replica's tokens. The secret file may hold several secrets,
//! one per line: the first signs, all verify, which lets an operator rotate
//! without a flag day.

use std::{
    fmt,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{policy::Host, wire::TlsMode};

/// What a token binds besides the destination: the session's TLS mode and
/// whether TLS ends in the client (`endToEnd`). A [`TlsMode`] alone is
/// the bridge-side binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub tls: TlsMode,
    pub end_to_end: bool,
}

impl Binding {
    /// TLS in the client, the bridge relaying TCP.
    pub fn end_to_end(tls: TlsMode) -> Binding {
        Binding { tls, end_to_end: true }
    }

    /// The MODE of a token's payload.
    pub fn as_str(self) -> &'static str {
        match (self.end_to_end, self.tls) {
            (false, tls) => tls.as_str(),
            (true, TlsMode::Implicit) => "e2e-implicit",
            (true, TlsMode::Starttls) => "e2e-starttls",
            // The wire format refuses endToEnd without TLS before any token is read.
            (true, TlsMode::None) => "e2e-none",
        }
    }

    /// Reads a payload's MODE (`e2e-none` is not one).
    pub fn parse(s: &str) -> Option<Binding> {
        match s.strip_prefix("e2e-") {
            None => TlsMode::parse(s).map(Binding::from),
            Some(tls) => TlsMode::parse(tls).filter(|t| *t != TlsMode::None).map(Binding::end_to_end),
        }
    }
}

impl From<TlsMode> for Binding {
    fn from(tls: TlsMode) -> Binding {
        Binding { tls, end_to_end: false }
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Longest token looked at; anything longer is malformed.
const MAX_TOKEN_LEN: usize = 1024;

/// The default for `token_max_ttl`.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The signing and verifying secrets. `Debug` never shows them.
#[derive(Clone)]
pub struct TokenKeys {
    secrets: Vec<Vec<u8>>,
    /// Tokens expiring further ahead than this are refused.
    max_ttl: Duration,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKeys({} secret(s), redacted, max_ttl {:?})", self.secrets.len(), self.max_ttl)
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
    /// Made for another TLS mode than the session asks for.
    WrongTls,
    /// Made for bridge-side TLS and the session is end to end, or the
    /// other way round.
    WrongEndToEnd,
    /// Expires further ahead than `token_max_ttl`.
    TooLong,
    /// Format 1 (bound to host and port only): mint a new one.
    Outdated,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Missing => "no token",
            TokenError::Malformed => "malformed token",
            TokenError::BadSignature => "token signature does not verify",
            TokenError::Expired => "token expired",
            TokenError::WrongDestination => "token is for another destination",
            TokenError::WrongTls => "token is for another TLS mode",
            TokenError::WrongEndToEnd => {
                "token is for the other end of TLS (bridge-side vs end-to-end); mint one with or without --end-to-end"
            }
            TokenError::TooLong => "token lives longer than token_max_ttl",
            TokenError::Outdated => "token of format 1 (without the TLS mode); mint a new one",
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
        Ok(TokenKeys { secrets, max_ttl: DEFAULT_MAX_TTL })
    }

    /// Refuses tokens that expire further ahead than `max_ttl`.
    pub fn with_max_ttl(self, max_ttl: Duration) -> TokenKeys {
        TokenKeys { max_ttl, ..self }
    }

    /// The longest lifetime a token may have.
    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
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

    /// A token for `host:port` bound to `binding` (a [`TlsMode`] for
    /// bridge-side TLS), valid until `expires`.
    pub fn mint(&self, host: &Host, port: u16, binding: impl Into<Binding>, expires: SystemTime) -> String {
        let exp = expires.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        let mode = binding.into();
        let payload = URL_SAFE_NO_PAD.encode(format!("2.{exp}.{port}.{mode}.{host}"));
        let tag = Self::mac(&self.secrets[0], payload.as_bytes()).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks the signature (in constant time), then the expiry and the
    /// lifetime, then that the token names this destination and binding.
    pub fn verify(
        &self,
        token: &str,
        host: &Host,
        port: u16,
        binding: impl Into<Binding>,
        now: SystemTime,
    ) -> Result<(), TokenError> {
        let binding = binding.into();
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
        if payload.starts_with("1.") {
            return Err(TokenError::Outdated);
        }
        let mut parts = payload.splitn(5, '.');
        let (Some("2"), Some(exp), Some(tok_port), Some(tok_tls), Some(tok_host)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let exp: u64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        if now >= exp {
            return Err(TokenError::Expired);
        }
        if exp - now > self.max_ttl.as_secs() {
            return Err(TokenError::TooLong);
        }
        let tok_port: u16 = tok_port.parse().map_err(|_| TokenError::Malformed)?;
        let tok_binding = Binding::parse(tok_tls).ok_or(TokenError::Malformed)?;
        let tok_host = Host::parse(tok_host).ok_or(TokenError::Malformed)?;
        if tok_port != port || &tok_host != host {
            return Err(TokenError::WrongDestination);
        }
        if tok_binding.end_to_end != binding.end_to_end {
            return Err(TokenError::WrongEndToEnd);
        }
        if tok_binding.tls != binding.tls {
            return Err(TokenError::WrongTls);
        }
        Ok(())
    }
}

/// A warning when the secret file can be read or written by anyone but
/// its owner (anyone who reads it can mint tokens).
pub fn permission_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "token secret file {} is open to group or others (mode {mode:03o}): anyone who can read it can mint tokens; chmod 600 it",
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: TlsMode = TlsMode::Implicit;

    fn keys(s: &str) -> TokenKeys {
        TokenKeys::new(vec![s.repeat(32).into_bytes()]).unwrap()
    }

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    fn signed(k: &TokenKeys, payload: &str) -> String {
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let tag =
            URL_SAFE_NO_PAD.encode(TokenKeys::mac(&k.secrets[0], payload.as_bytes()).finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    #[test]
    fn a_minted_token_verifies_for_its_destination_only() {
        let k = keys("a");
        let now = SystemTime::now();
        let t = k.mint(&host("POP.Example.com."), 995, I, now + Duration::from_secs(60));
        assert_eq!(k.verify(&t, &host("pop.example.com"), 995, I, now), Ok(()));
        assert_eq!(k.verify(&t, &host("pop.example.com"), 110, I, now), Err(TokenError::WrongDestination));
        assert_eq!(k.verify(&t, &host("imap.example.com"), 995, I, now), Err(TokenError::WrongDestination));
        let t6 = k.mint(&host("::1"), 110, TlsMode::Starttls, now + Duration::from_secs(60));
        assert_eq!(k.verify(&t6, &host("[::1]"), 110, TlsMode::Starttls, now), Ok(()));
        assert_eq!(
            k.verify(&t6, &host("::2"), 110, TlsMode::Starttls, now),
            Err(TokenError::WrongDestination)
        );
    }

    #[test]
    fn a_token_is_bound_to_its_tls_mode() {
        let k = keys("a");
        let now = SystemTime::now();
        let h = host("pop.example.com");
        let t = k.mint(&h, 995, I, now + Duration::from_secs(60));
        assert_eq!(k.verify(&t, &h, 995, TlsMode::None, now), Err(TokenError::WrongTls));
        assert_eq!(k.verify(&t, &h, 995, TlsMode::Starttls, now), Err(TokenError::WrongTls));
        let t = k.mint(&h, 110, TlsMode::Starttls, now + Duration::from_secs(60));
        assert_eq!(k.verify(&t, &h, 110, TlsMode::None, now), Err(TokenError::WrongTls));
        assert_eq!(k.verify(&t, &h, 110, TlsMode::Starttls, now), Ok(()));
        // Format 1 (host and port only) is refused, even correctly signed.
        let exp = (now + Duration::from_secs(60)).duration_since(UNIX_EPOCH).unwrap().as_secs();
        let old = signed(&k, &format!("1.{exp}.995.pop.example.com"));
        assert_eq!(k.verify(&old, &h, 995, I, now), Err(TokenError::Outdated));
        assert_eq!(
            k.verify(&signed(&k, &format!("2.{exp}.995.tls.pop.example.com")), &h, 995, I, now),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn an_end_to_end_token_opens_end_to_end_sessions_only() {
        let k = keys("a");
        let now = SystemTime::now();
        let h = host("pop.example.com");
        let later = now + Duration::from_secs(60);
        let e2e = |tls| Binding::end_to_end(tls);
        let t = k.mint(&h, 995, e2e(I), later);
        let (payload, _) = t.split_once('.').unwrap();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(payload.ends_with(".995.e2e-implicit.pop.example.com"), "{payload}");
        assert_eq!(k.verify(&t, &h, 995, e2e(I), now), Ok(()));
        assert_eq!(k.verify(&t, &h, 995, I, now), Err(TokenError::WrongEndToEnd));
        assert_eq!(k.verify(&t, &h, 995, e2e(TlsMode::Starttls), now), Err(TokenError::WrongTls));
        // A bridge-side token does not open an end-to-end session.
        let bridge_side = k.mint(&h, 995, I, later);
        assert_eq!(k.verify(&bridge_side, &h, 995, e2e(I), now), Err(TokenError::WrongEndToEnd));
        let t = k.mint(&h, 110, e2e(TlsMode::Starttls), later);
        assert_eq!(k.verify(&t, &h, 110, e2e(TlsMode::Starttls), now), Ok(()));
        assert_eq!(k.verify(&t, &h, 110, TlsMode::Starttls, now), Err(TokenError::WrongEndToEnd));
        // "e2e-none" is no mode, even signed.
        let exp = later.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let none = signed(&k, &format!("2.{exp}.110.e2e-none.pop.example.com"));
        assert_eq!(k.verify(&none, &h, 110, e2e(TlsMode::None), now), Err(TokenError::Malformed));
        for b in [I.into(), e2e(I), e2e(TlsMode::Starttls), TlsMode::None.into()] {
            assert_eq!(Binding::parse(b.as_str()), Some(b));
        }
    }

    #[test]
    fn a_token_living_longer_than_the_longest_lifetime_is_refused() {
        let k = keys("a").with_max_ttl(Duration::from_secs(3600));
        let now = SystemTime::now();
        let h = host("pop.example.com");
        let ok = k.mint(&h, 995, I, now + Duration::from_secs(3600));
        assert_eq!(k.verify(&ok, &h, 995, I, now), Ok(()));
        let long = k.mint(&h, 995, I, now + Duration::from_secs(3601));
        assert_eq!(k.verify(&long, &h, 995, I, now), Err(TokenError::TooLong));
        // ... until it is within the lifetime.
        assert_eq!(k.verify(&long, &h, 995, I, now + Duration::from_secs(2)), Ok(()));
        assert_eq!(keys("a").max_ttl(), DEFAULT_MAX_TTL);
    }

    #[test]
    fn expired_forged_and_malformed_tokens_are_refused() {
        let k = keys("a");
        let now = SystemTime::now();
        let h = host("pop.example.com");
        let t = k.mint(&h, 995, I, now + Duration::from_secs(60));
        assert_eq!(k.verify(&t, &h, 995, I, now + Duration::from_secs(60)), Err(TokenError::Expired));
        assert_eq!(keys("b").verify(&t, &h, 995, I, now), Err(TokenError::BadSignature));
        // A payload changed after signing (longer expiry) no longer verifies.
        let (_, tag) = t.split_once('.').unwrap();
        let forged =
            format!("{}.{tag}", URL_SAFE_NO_PAD.encode("2.99999999999.995.implicit.pop.example.com"));
        assert_eq!(k.verify(&forged, &h, 995, I, now), Err(TokenError::BadSignature));
        for bad in ["", ".", "abc", "abc.!!!", &"a".repeat(2000)] {
            assert!(k.verify(bad, &h, 995, I, now).is_err(), "{bad}");
        }
        // A correctly signed but nonsensical payload is malformed.
        assert_eq!(k.verify(&signed(&k, "3.x.y.z"), &h, 995, I, now), Err(TokenError::Malformed));
    }

    #[test]
    fn every_secret_in_the_file_verifies_and_the_first_signs() {
        let old = keys("o");
        let both = TokenKeys::new(vec!["n".repeat(32).into_bytes(), "o".repeat(32).into_bytes()]).unwrap();
        let now = SystemTime::now();
        let h = host("pop.example.com");
        let t = old.mint(&h, 995, I, now + Duration::from_secs(60));
        assert_eq!(both.verify(&t, &h, 995, I, now), Ok(()));
        let t = both.mint(&h, 995, I, now + Duration::from_secs(60));
        assert_eq!(old.verify(&t, &h, 995, I, now), Err(TokenError::BadSignature));
        assert!(TokenKeys::new(vec![b"short".to_vec()]).is_err());
        assert!(!format!("{both:?}").contains("nnnn"));
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_file_open_to_others_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("ws-bridge-token-perm-{}", std::process::id()));
        std::fs::write(&path, "x".repeat(40)).unwrap();
        for (mode, warned) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true), (0o620, true)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let warning = permission_warning(&path);
            assert_eq!(warning.is_some(), warned, "{mode:o}: {warning:?}");
        }
        let _ = std::fs::remove_file(&path);
    }
}
