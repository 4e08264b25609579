//! SASL mechanisms (RFC 4422) as the core drives them through AUTH
//! (RFC 5034). A mechanism only turns challenges into responses; framing,
//! base64, the 255-octet rule and cancelling are the session's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::secret::Secret;

/// Why a mechanism could not go on. The session cancels the exchange with
/// `*` and reports `AUTH_FAILED` with this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslError(pub String);

pub trait Mechanism {
    /// The IANA name, upper case: `PLAIN`, `SCRAM-SHA-256`.
    fn name(&self) -> &str;

    /// The initial response of a client-first mechanism (may be empty),
    /// `None` for server-first ones such as LOGIN and CRAM-MD5.
    fn initial_response(&mut self) -> Option<Secret<Vec<u8>>>;

    /// Answers one server challenge (already base64-decoded).
    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError>;

    /// Called when the server says `+OK`. A mechanism that authenticates the
    /// server too (SCRAM) fails here if the server never proved itself.
    fn complete(&mut self) -> Result<(), SaslError> {
        Ok(())
    }

    /// What the server said about a failure inside the exchange (the OAuth
    /// error JSON), reported with the `-ERR` that follows it.
    fn failure_detail(&self) -> Option<String> {
        None
    }
}

/// RFC 4616 PLAIN: `authzid NUL authcid NUL passwd`, in one go.
#[derive(Debug)]
pub struct Plain {
    authzid: String,
    username: String,
    password: Secret<String>,
}

impl Plain {
    pub fn new(username: &str, password: Secret<String>) -> Self {
        Self { authzid: String::new(), username: username.to_string(), password }
    }

    pub fn with_authzid(mut self, authzid: &str) -> Self {
        self.authzid = authzid.to_string();
        self
    }

    fn message(&self) -> Secret<Vec<u8>> {
        let mut m = Vec::with_capacity(self.username.len() + self.password.expose().len() + 2);
        m.extend_from_slice(self.authzid.as_bytes());
        m.push(0);
        m.extend_from_slice(self.username.as_bytes());
        m.push(0);
        m.extend_from_slice(self.password.expose().as_bytes());
        Secret::new(m)
    }
}

impl Mechanism for Plain {
    fn name(&self) -> &str {
        "PLAIN"
    }

    fn initial_response(&mut self) -> Option<Secret<Vec<u8>>> {
        Some(self.message())
    }

    fn respond(&mut self, _challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        // The initial response is all of PLAIN (the session sends it after
        // an empty challenge when it did not fit on the AUTH line).
        Err(SaslError("the server asked for more after the PLAIN response".into()))
    }
}

/// The LOGIN mechanism (draft-murchison-sasl-login): the server prompts
/// for the user name, then the password. Readable, like PLAIN.
#[derive(Debug)]
pub struct Login {
    username: String,
    password: Secret<String>,
    step: u8,
}

impl Login {
    pub fn new(username: &str, password: Secret<String>) -> Self {
        Self { username: username.to_string(), password, step: 0 }
    }
}

impl Mechanism for Login {
    fn name(&self) -> &str {
        "LOGIN"
    }

    fn initial_response(&mut self) -> Option<Secret<Vec<u8>>> {
        None
    }

    fn respond(&mut self, _prompt: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        self.step += 1;
        match self.step {
            1 => Ok(Secret::new(self.username.as_bytes().to_vec())),
            2 => Ok(Secret::new(self.password.expose().as_bytes().to_vec())),
            _ => Err(SaslError("the server asked for more than a user name and a password".into())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 2195 CRAM-MD5: `user SP hex(HMAC-MD5(password, challenge))`.
#[derive(Debug)]
pub struct CramMd5 {
    username: String,
    password: Secret<String>,
    answered: bool,
}

impl CramMd5 {
    pub fn new(username: &str, password: Secret<String>) -> Self {
        Self { username: username.to_string(), password, answered: false }
    }
}

impl Mechanism for CramMd5 {
    fn name(&self) -> &str {
        "CRAM-MD5"
    }

    fn initial_response(&mut self) -> Option<Secret<Vec<u8>>> {
        None
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        use hmac::{Hmac, Mac};
        if self.answered {
            return Err(SaslError("the server sent a second CRAM-MD5 challenge".into()));
        }
        if challenge.is_empty() {
            return Err(SaslError("empty CRAM-MD5 challenge".into()));
        }
        self.answered = true;
        let mut mac = Hmac::<md5::Md5>::new_from_slice(self.password.expose().as_bytes())
            .map_err(|_| SaslError("HMAC key".into()))?;
        mac.update(challenge);
        let digest = hex(&mac.finalize().into_bytes());
        Ok(Secret::new(format!("{} {digest}", self.username).into_bytes()))
    }
}

/// The hash behind a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        match self {
            ScramHash::Sha1 => {
                let mut m = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha256 => {
                let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            ScramHash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramHash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// The most PBKDF2 iterations a server may ask for: more is a way for a
/// hostile server to make the client burn CPU.
pub const SCRAM_MAX_ITERATIONS: u32 = 1_000_000;

/// RFC 5802 saslname: `=` and `,` escaped.
fn saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

#[derive(Debug)]
enum ScramState {
    Start,
    /// Client-final sent; holds the server signature it must prove.
    AwaitServerFinal(Secret<Vec<u8>>),
    Verified,
}

/// RFC 5802 / RFC 7677 SCRAM-SHA-1 and SCRAM-SHA-256, without channel
/// binding. The server must prove it knows the password: `complete` fails
/// unless its signature verified.
#[derive(Debug)]
pub struct Scram {
    hash: ScramHash,
    username: String,
    password: Secret<String>,
    client_nonce: String,
    client_first_bare: String,
    state: ScramState,
    nfkc: fn(&str) -> String,
}

impl Scram {
    /// `client_nonce`: printable ASCII without `,`, from a CSPRNG (the core
    /// has no randomness of its own).
    pub fn new(hash: ScramHash, username: &str, password: Secret<String>, client_nonce: &str) -> Self {
        let client_first_bare = format!("n={},r={client_nonce}", saslname(username));
        Self {
            hash,
            username: username.to_string(),
            password,
            client_nonce: client_nonce.to_string(),
            client_first_bare,
            state: ScramState::Start,
            nfkc: super::saslprep::no_nfkc,
        }
    }

    /// The Unicode NFKC normalisation SASLprep uses (default: none, which
    /// is right for ASCII and already-normalised passwords).
    pub fn with_nfkc(mut self, nfkc: fn(&str) -> String) -> Self {
        self.nfkc = nfkc;
        self
    }

    fn server_first(&mut self, msg: &str) -> Result<Secret<Vec<u8>>, SaslError> {
        let attr = |k: char| {
            msg.split(',')
                .find_map(|a| a.strip_prefix(k).and_then(|r| r.strip_prefix('=')).map(str::to_string))
        };
        if msg.starts_with("m=") {
            return Err(SaslError("the server requires a SCRAM extension this client does not know".into()));
        }
        if let Some(e) = attr('e') {
            return Err(SaslError(format!("the server reported a SCRAM error: {e}")));
        }
        let nonce = attr('r').ok_or_else(|| SaslError("SCRAM server-first without a nonce".into()))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(SaslError("the server's SCRAM nonce does not extend the client's".into()));
        }
        let salt = attr('s')
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| SaslError("SCRAM server-first without a valid salt".into()))?;
        let iterations: u32 = attr('i')
            .and_then(|i| i.parse().ok())
            .filter(|i| *i >= 1)
            .ok_or_else(|| SaslError("SCRAM server-first without a valid iteration count".into()))?;
        if iterations > SCRAM_MAX_ITERATIONS {
            return Err(SaslError(format!(
                "the server asks for {iterations} SCRAM iterations (more than {SCRAM_MAX_ITERATIONS})"
            )));
        }
        let password = super::saslprep::saslprep(self.password.expose(), self.nfkc)?;
        let h = self.hash;
        let salted = Secret::new(h.salted_password(password.as_bytes(), &salt, iterations));
        let client_key = Secret::new(h.hmac(salted.expose(), b"Client Key"));
        let stored_key = h.hash(client_key.expose());
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{msg},{without_proof}", self.client_first_bare);
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.expose().iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
        let server_key = h.hmac(salted.expose(), b"Server Key");
        let server_signature = h.hmac(&server_key, auth_message.as_bytes());
        self.state = ScramState::AwaitServerFinal(Secret::new(server_signature));
        Ok(Secret::new(format!("{without_proof},p={}", B64.encode(proof)).into_bytes()))
    }
}

impl Mechanism for Scram {
    fn name(&self) -> &str {
        match self.hash {
            ScramHash::Sha1 => "SCRAM-SHA-1",
            ScramHash::Sha256 => "SCRAM-SHA-256",
        }
    }

    fn initial_response(&mut self) -> Option<Secret<Vec<u8>>> {
        Some(Secret::new(format!("n,,{}", self.client_first_bare).into_bytes()))
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        let msg =
            std::str::from_utf8(challenge).map_err(|_| SaslError("SCRAM message is not UTF-8".into()))?;
        match std::mem::replace(&mut self.state, ScramState::Start) {
            ScramState::Start => self.server_first(msg),
            ScramState::AwaitServerFinal(expected) => {
                if let Some(e) = msg.strip_prefix("e=") {
                    return Err(SaslError(format!("the server reported a SCRAM error: {e}")));
                }
                let got = msg
                    .split(',')
                    .find_map(|a| a.strip_prefix("v="))
                    .and_then(|v| B64.decode(v).ok())
                    .ok_or_else(|| SaslError("SCRAM server-final without a signature".into()))?;
                if !constant_time_eq(&got, expected.expose()) {
                    return Err(SaslError(
                        "the server's SCRAM signature is wrong: it does not know the password".into(),
                    ));
                }
                self.state = ScramState::Verified;
                Ok(Secret::new(Vec::new()))
            }
            ScramState::Verified => Err(SaslError("the server sent more after SCRAM completed".into())),
        }
    }

    fn complete(&mut self) -> Result<(), SaslError> {
        match self.state {
            ScramState::Verified => Ok(()),
            _ => Err(SaslError(format!(
                "the server accepted {} as {} without proving it knows the password",
                self.name(),
                self.username
            ))),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Google's and Microsoft's XOAUTH2. Two-step by default (`AUTH XOAUTH2`,
/// then the token after the server's empty challenge): Office 365 rejects
/// the one-line form.
#[derive(Debug)]
pub struct XOAuth2 {
    username: String,
    token: Secret<String>,
    one_line: bool,
    sent: bool,
    error: Option<String>,
}

impl XOAuth2 {
    pub fn new(username: &str, token: Secret<String>) -> Self {
        Self { username: username.to_string(), token, one_line: false, sent: false, error: None }
    }

    pub fn one_line(mut self) -> Self {
        self.one_line = true;
        self
    }

    fn message(&self) -> Secret<Vec<u8>> {
        Secret::new(
            format!("user={}\x01auth=Bearer {}\x01\x01", self.username, self.token.expose()).into_bytes(),
        )
    }
}

impl Mechanism for XOAuth2 {
    fn name(&self) -> &str {
        "XOAUTH2"
    }

    fn initial_response(&mut self) -> Option<Secret<Vec<u8>>> {
        if self.one_line {
            self.sent = true;
            Some(self.message())
        } else {
            None
        }
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        if !self.sent && challenge.is_empty() {
            self.sent = true;
            return Ok(self.message());
        }
        // The server's error JSON; an empty response makes it finish with -ERR.
        self.error = Some(String::from_utf8_lossy(challenge).into_owned());
        Ok(Secret::new(Vec::new()))
    }

    fn failure_detail(&self) -> Option<String> {
        self.error.clone()
    }
}

/// RFC 7628 OAUTHBEARER. On failure the server sends its error JSON as a
/// challenge; the client answers `\x01` and the server ends with `-ERR`.
#[derive(Debug)]
pub struct OAuthBearer {
    username: String,
    token: Secret<String>,
    host: Option<String>,
    port: Option<u16>,
    error: Option<String>,
}

impl OAuthBearer {
    pub fn new(username: &str, token: Secret<String>) -> Self {
        Self { username: username.to_string(), token, host: None, port: None, error: None }
    }

    pub fn with_target(mut self, host: &str, port: u16) -> Self {
        self.host = Some(host.to_string());
        self.port = Some(port);
        self
    }
}

impl Mechanism for OAuthBearer {
    fn name(&self) -> &str {
        "OAUTHBEARER"
    }

    fn initial_response(&mut self) -> Option<Secret<Vec<u8>>> {
        let mut m = format!("n,a={},", saslname(&self.username));
        if let Some(h) = &self.host {
            m.push_str(&format!("\x01host={h}"));
        }
        if let Some(p) = self.port {
            m.push_str(&format!("\x01port={p}"));
        }
        m.push_str(&format!("\x01auth=Bearer {}\x01\x01", self.token.expose()));
        Some(Secret::new(m.into_bytes()))
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        if self.error.is_some() {
            return Err(SaslError("the server continued after the OAuth error".into()));
        }
        self.error = Some(String::from_utf8_lossy(challenge).into_owned());
        Ok(Secret::new(vec![0x01]))
    }

    fn failure_detail(&self) -> Option<String> {
        self.error.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message_layout() {
        let mut p = Plain::new("tim", Secret::new("tanstaaftanstaaf".into()));
        assert_eq!(p.initial_response().unwrap().expose(), b"\0tim\0tanstaaftanstaaf");
        let mut p = Plain::new("tim", Secret::new("x".into())).with_authzid("admin");
        assert_eq!(p.initial_response().unwrap().expose(), b"admin\0tim\0x");
    }

    #[test]
    fn cram_md5_rfc2195_example() {
        let mut m = CramMd5::new("tim", Secret::new("tanstaaftanstaaf".into()));
        let r = m.respond(b"<1896.697170952@postoffice.reston.mci.net>").unwrap();
        assert_eq!(r.expose(), b"tim b913a602c7eda7a495b4e6e7334d3890");
    }

    #[test]
    fn scram_sha1_rfc5802_example() {
        let mut m =
            Scram::new(ScramHash::Sha1, "user", Secret::new("pencil".into()), "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(m.initial_response().unwrap().expose(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let r = m.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096").unwrap();
        assert_eq!(
            r.expose(),
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(m.complete().is_err(), "not verified yet");
        assert!(m.respond(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap().expose().is_empty());
        m.complete().unwrap();
    }

    #[test]
    fn scram_sha256_rfc7677_example() {
        let mut m =
            Scram::new(ScramHash::Sha256, "user", Secret::new("pencil".into()), "rOprNGfwEbeRWgbNEkqO");
        let r = m
            .respond(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            r.expose(),
            &b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="[..]
        );
        m.respond(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        m.complete().unwrap();
    }

    #[test]
    fn scram_wrong_server_signature_fails() {
        let mut m =
            Scram::new(ScramHash::Sha1, "user", Secret::new("pencil".into()), "fyko+d2lbbFgONRv9qkxdawL");
        m.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096").unwrap();
        let e = m.respond(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap_err();
        assert!(e.0.contains("signature"), "{e:?}");
        assert!(m.complete().is_err());
    }

    #[test]
    fn scram_refuses_hostile_server_first() {
        let fresh = || Scram::new(ScramHash::Sha256, "u", Secret::new("p".into()), "abc");
        assert!(fresh().respond(b"r=xyz123,s=QSXCR+Q6sek8bf92,i=4096").is_err(), "nonce not extended");
        assert!(fresh().respond(b"r=abc,s=QSXCR+Q6sek8bf92,i=4096").is_err(), "nonce not extended");
        assert!(fresh().respond(b"r=abcd,s=QSXCR+Q6sek8bf92,i=999999999").is_err(), "iterations");
        assert!(fresh().respond(b"m=ext,r=abcd,s=QSXCR+Q6sek8bf92,i=1").is_err(), "extension");
        assert!(fresh().respond(b"r=abcd,s=***,i=1").is_err(), "salt");
    }

    #[test]
    fn scram_escapes_user_names() {
        let mut m = Scram::new(ScramHash::Sha256, "a=b,c", Secret::new("p".into()), "n0nce");
        assert_eq!(m.initial_response().unwrap().expose(), b"n,,n=a=3Db=2Cc,r=n0nce");
    }

    #[test]
    fn login_answers_user_then_password() {
        let mut m = Login::new("tim", Secret::new("pw".into()));
        assert!(m.initial_response().is_none());
        assert_eq!(m.respond(b"Username:").unwrap().expose(), b"tim");
        assert_eq!(m.respond(b"Password:").unwrap().expose(), b"pw");
        assert!(m.respond(b"More:").is_err());
    }

    #[test]
    fn xoauth2_two_step_and_error_json() {
        let mut m = XOAuth2::new(
            "someuser@example.com",
            Secret::new("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg".into()),
        );
        assert!(m.initial_response().is_none());
        assert_eq!(
            m.respond(b"").unwrap().expose(),
            b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
        );
        let json = br#"{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}"#;
        assert!(m.respond(json).unwrap().expose().is_empty());
        assert_eq!(m.failure_detail().unwrap(), String::from_utf8_lossy(json));
        let mut one = XOAuth2::new("u", Secret::new("t".into())).one_line();
        assert_eq!(one.initial_response().unwrap().expose(), b"user=u\x01auth=Bearer t\x01\x01");
    }

    #[test]
    fn oauthbearer_rfc7628_layout_and_error() {
        let mut m = OAuthBearer::new(
            "user@example.com",
            Secret::new("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".into()),
        )
        .with_target("server.example.com", 143);
        assert_eq!(
            m.initial_response().unwrap().expose(),
            b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
        let json = br#"{"status":"invalid_token","scope":"example_scope"}"#;
        assert_eq!(m.respond(json).unwrap().expose(), b"\x01");
        assert!(m.failure_detail().unwrap().contains("invalid_token"));
    }
}
