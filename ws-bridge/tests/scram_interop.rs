//! The client's SCRAM-SHA-256 (pop3-wasm's `proto::Scram`) against the demo
//! server's (`ws_bridge::demo::scram`), in memory: both sides share one
//! version of hmac, sha2, pbkdf2 and base64 (the workspace table), so each
//! can check the other. Each side must accept the other's proof when the
//! password is right, and refuse it when it is not.

use pop3_wasm::proto::{Mechanism, SaslError, Scram, ScramHash, Secret};
use ws_bridge::demo::scram::{self, Credentials, ITERATIONS, ScramError};

const SALT: &[u8] = b"salt-of-the-interop-test";

/// Where an exchange ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Both sides proved themselves: the server accepted the client's proof
    /// and the client verified the server's signature.
    BothVerified,
    /// The server refused the client-final message.
    ServerRefused(ScramError),
    /// The client refused the server-final message.
    ClientRefused(SaslError),
}

/// The client `user`/`password` against a server that knows one account,
/// `server_user`/`server_password`; `server_final_override` replaces what
/// the server answers with (a replayed or forged signature).
fn exchange(
    (user, password): (&str, &str),
    server_user: &str,
    server_password: &str,
    server_nonce: &str,
    server_final_override: Option<&str>,
) -> (Outcome, String) {
    let mut client =
        Scram::new(ScramHash::Sha256, user, Secret::new(password.to_string()), "cNonce-0123456789abcdef");
    let stored = Credentials::new(server_password, SALT, ITERATIONS);
    let lookup = |user: &str| (user == server_user).then(|| stored.clone());

    let client_first = client.initial_response().expect("SCRAM is client-first");
    let (ex, server_first, creds) = scram::start(client_first.expose(), server_nonce, lookup).unwrap();
    assert_eq!(ex.username(), user, "the server read the client's escaped user name back");

    let client_final = client.respond(server_first.as_bytes()).unwrap();
    let server_final = match ex.finish(client_final.expose(), creds.as_ref()) {
        Ok(v) => v,
        Err(e) => return (Outcome::ServerRefused(e), String::new()),
    };
    let shown = server_final_override.map_or(server_final.clone(), str::to_string);
    let last = match client.respond(shown.as_bytes()) {
        Ok(last) => last,
        Err(e) => return (Outcome::ClientRefused(e), server_final),
    };
    assert!(last.expose().is_empty(), "the client answers a verified server-final with an empty response");
    client.complete().expect("the client completes once the server proved itself");
    (Outcome::BothVerified, server_final)
}

#[test]
fn right_password_verifies_both_ways() {
    let (outcome, server_final) = exchange(("demo", "demo"), "demo", "demo", "sNonce", None);
    assert_eq!(outcome, Outcome::BothVerified);
    assert!(server_final.starts_with("v="), "{server_final}");
}

#[test]
fn escaped_user_name_and_non_ascii_password_verify_both_ways() {
    // saslname escaping (`=2C`, `=3D`) on the client, decoding on the
    // server; an NFC password goes through SASLprep unchanged.
    let (outcome, _) = exchange(("a,b=c", "pässwörd"), "a,b=c", "pässwörd", "sNonce", None);
    assert_eq!(outcome, Outcome::BothVerified);
}

#[test]
fn wrong_password_is_refused_by_the_server() {
    let (outcome, _) = exchange(("demo", "wrong"), "demo", "demo", "sNonce", None);
    assert_eq!(outcome, Outcome::ServerRefused(ScramError::Failed));
}

#[test]
fn unknown_user_is_refused_like_a_wrong_password() {
    let (outcome, _) = exchange(("nobody", "demo"), "demo", "demo", "sNonce", None);
    assert_eq!(outcome, Outcome::ServerRefused(ScramError::Failed));
}

#[test]
fn client_refuses_a_server_signature_from_another_exchange() {
    // A server that does not know the password can only replay a signature
    // it saw before: that one was made over another nonce.
    let (_, replayed) = exchange(("demo", "demo"), "demo", "demo", "firstNonce", None);
    let (outcome, _) = exchange(("demo", "demo"), "demo", "demo", "secondNonce", Some(&replayed));
    let Outcome::ClientRefused(SaslError(why)) = outcome else { panic!("accepted: {outcome:?}") };
    assert!(why.contains("does not know the password"), "{why}");
}
