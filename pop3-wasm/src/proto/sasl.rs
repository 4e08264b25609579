//! SASL mechanisms (RFC 4422) as the core drives them through AUTH
//! (RFC 5034). A mechanism only turns challenges into responses; framing,
//! base64, the 255-octet rule and cancelling are the session's.

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
}
