//! What the client shows about a TLS session: the version, the cipher, and
//! the certificates the server sent.
//!
//! `protocol`, `cipher` and `certificate` are the bridge's `TlsInfo`
//! (`crate::wire::TlsInfo`) string for string: the same rustls names, the
//! distinguished names as x509-parser prints them, the same RFC 3339
//! dates. `chain` adds every certificate as the server sent it, for the
//! checker's analysis.
//!
//! The parser is RustCrypto's x509-cert, not the bridge's x509-parser:
//! measured in the TLS-capable wasm module, x509-parser (with its OID
//! registry, nom, der-parser, num-bigint and data-encoding) added about
//! 62 KiB gzip, x509-cert about 31 KiB (the module would miss its 450 KiB
//! budget with the former). The price is [`name_text`] and the
//! small name tables below, which write what x509-parser's `Display` and
//! OID registry would; tests/e2e/tls-engine.test.mjs compares the result
//! with the bridge's on the test Dovecot's certificate.

use std::{fmt::Write as _, net::IpAddr, time::Duration};

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_cert::{
    certificate::{CertificateInner, Raw},
    der::{
        self, Decode, Reader, SliceReader, Tag, Tagged,
        asn1::{Any, BmpString, ObjectIdentifier, UintRef},
    },
    ext::pkix::{SubjectAltName, name::GeneralName},
    name::Name,
};

/// The session as the client shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: String,
    /// The IANA-style rustls name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The server's certificate, in the bridge's three fields.
    pub certificate: CertificateInfo,
    /// Every certificate the server sent, leaf first, in its order.
    pub chain: Vec<CertificateDetails>,
}

/// The server's leaf certificate, in the bridge's three fields: the wire
/// format's own type, so the two cannot differ.
pub use crate::wire::CertificateInfo;

/// One certificate of the chain the server sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateDetails {
    pub subject: String,
    pub issuer: String,
    /// subjectAltName DNS names, in the certificate's order.
    pub dns_names: Vec<String>,
    /// subjectAltName IP addresses (`127.0.0.1`, `::1`).
    pub ip_addresses: Vec<String>,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    /// `RSA`, `EC`, `Ed25519`, `Ed448`, `RSA-PSS`, else the algorithm's
    /// name or OID.
    pub key_type: String,
    /// Modulus size for RSA, field size for EC and EdDSA; 0 if unknown.
    pub key_bits: u32,
    /// The named curve of an EC key: `P-256`, `P-384`, `P-521`, else its
    /// name or OID.
    pub curve: Option<String>,
    /// The algorithm the issuer signed with, by its usual name
    /// (`sha256WithRSAEncryption`, `ecdsa-with-SHA256`) or OID.
    pub signature_algorithm: String,
    /// SHA-256 over the DER, as `openssl x509 -fingerprint -sha256` prints it.
    pub sha256: String,
    /// Set when this certificate could not be parsed here (the other
    /// fields are then empty, except `sha256`).
    pub parse_error: Option<String>,
}

impl CertificateDetails {
    /// Parses one DER certificate; never fails (see `parse_error`).
    pub fn parse(der: &CertificateDer<'_>) -> CertificateDetails {
        let sha256 = fingerprint(der.as_ref());
        // The `Raw` profile: no judgement on the serial number's length;
        // verifying is webpki's job, this only describes.
        match CertificateInner::<Raw>::from_der(der.as_ref()) {
            Ok(cert) => CertificateDetails { sha256, ..details(&cert) },
            Err(e) => CertificateDetails {
                sha256,
                parse_error: Some(format!("cannot parse the certificate: {e}")),
                ..CertificateDetails::default()
            },
        }
    }

    /// The bridge's three fields.
    pub fn summary(&self) -> CertificateInfo {
        CertificateInfo {
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            not_after: self.not_after.clone(),
        }
    }
}

fn details(cert: &CertificateInner<Raw>) -> CertificateDetails {
    let tbs = cert.tbs_certificate();
    let (mut dns_names, mut ip_addresses) = (Vec::new(), Vec::new());
    if let Ok(Some((_, san))) = tbs.get_extension::<SubjectAltName>() {
        for name in san.0 {
            match name {
                GeneralName::DnsName(dns) => dns_names.push(dns.to_string()),
                GeneralName::IpAddress(ip) => ip_addresses.push(ip_text(ip.as_bytes())),
                _ => {}
            }
        }
    }
    let spki = tbs.subject_public_key_info();
    let key = spki.subject_public_key.raw_bytes();
    let param = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let (key_type, key_bits, curve) = match spki.algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => ("RSA".to_string(), rsa_bits(key), None),
        "1.2.840.113549.1.1.10" => ("RSA-PSS".to_string(), rsa_bits(key), None),
        "1.2.840.10045.2.1" => {
            // An uncompressed point: 04 || X || Y.
            let bits = (key.len().saturating_sub(1) / 2 * 8) as u32;
            ("EC".to_string(), bits, param.map(|c| curve_name(&c)))
        }
        "1.3.101.112" => ("Ed25519".to_string(), 256, None),
        "1.3.101.113" => ("Ed448".to_string(), 456, None),
        "1.2.840.10040.4.1" => ("DSA".to_string(), 0, None),
        other => (other.to_string(), 0, None),
    };
    CertificateDetails {
        subject: name_text(tbs.subject()),
        issuer: name_text(tbs.issuer()),
        dns_names,
        ip_addresses,
        not_before: date_text(tbs.validity().not_before.to_date_time()),
        not_after: date_text(tbs.validity().not_after.to_date_time()),
        key_type,
        key_bits,
        curve,
        signature_algorithm: signature_name(&cert.signature_algorithm().oid),
        sha256: String::new(),
        parse_error: None,
    }
}

/// A distinguished name as x509-parser's `Display` writes it (what the
/// bridge reports): RDNs in certificate order joined by `, `, the values
/// of a multi-valued RDN by ` + `, short names for the usual attribute
/// types, values that are not strings in upper-case hex.
fn name_text(name: &Name) -> String {
    let mut out = String::new();
    for rdn in name.iter_rdn() {
        let mut part = String::new();
        for atv in rdn.iter() {
            let Some(value) = attribute_value(&atv.value) else {
                return "<X509Error: Invalid X.509 name>".into();
            };
            if !part.is_empty() {
                part.push_str(" + ");
            }
            let _ = write!(part, "{}={value}", attribute_name(&atv.oid));
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&part);
    }
    out
}

fn attribute_value(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::TeletexString
        | Tag::VideotexString
        | Tag::VisibleString
        | Tag::NumericString => std::str::from_utf8(value.value()).ok().map(str::to_string),
        Tag::BmpString => value.decode_as::<BmpString>().ok().map(|s| s.to_string()),
        _ => Some(value.value().iter().map(|b| format!("{b:02X}")).collect()),
    }
}

/// x509-parser's abbreviations, then the short names of its OID registry
/// for attribute types, else `OID(…)`.
fn attribute_name(oid: &ObjectIdentifier) -> String {
    let dotted = oid.to_string();
    lookup(ATTRIBUTE_NAMES, &dotted).map_or_else(|| format!("OID({dotted})"), str::to_string)
}

/// The usual name of a signature algorithm (as OpenSSL and x509-parser's
/// registry call it), else its OID.
fn signature_name(oid: &ObjectIdentifier) -> String {
    let dotted = oid.to_string();
    lookup(SIGNATURE_NAMES, &dotted).map_or(dotted, str::to_string)
}

fn curve_name(oid: &ObjectIdentifier) -> String {
    let dotted = oid.to_string();
    lookup(CURVE_NAMES, &dotted).map_or(dotted, str::to_string)
}

fn lookup(table: &[(&str, &'static str)], dotted: &str) -> Option<&'static str> {
    table.iter().find(|(oid, _)| *oid == dotted).map(|(_, name)| *name)
}

const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "Email"),
    ("2.5.4.0", "objectClass"),
    ("2.5.4.1", "aliasedEntryName"),
    ("2.5.4.2", "knowledgeInformation"),
    ("2.5.4.4", "surname"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.9", "streetAddress"),
    ("2.5.4.12", "title"),
    ("2.5.4.13", "description"),
    ("2.5.4.14", "searchGuide"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.16", "postalAddress"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.41", "name"),
    ("2.5.4.42", "givenName"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.45", "uniqueIdentifier"),
    ("2.5.4.46", "dnQualifier"),
    ("0.9.2342.19200300.100.1.1", "uid"),
    ("1.3.6.1.4.1.311.60.2.1.1", "msJurisdictionLocality"),
    ("1.3.6.1.4.1.311.60.2.1.2", "msJurisdictionStateOrProvince"),
    ("1.3.6.1.4.1.311.60.2.1.3", "msJurisdictionCountry"),
];

const SIGNATURE_NAMES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.10", "rsassa-pss"),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.113549.1.1.14", "sha224WithRSAEncryption"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.3.101.112", "ed25519"),
    ("1.3.101.113", "ed448"),
    ("1.2.840.10040.4.3", "dsa-with-sha1"),
];

const CURVE_NAMES: &[(&str, &str)] =
    &[("1.2.840.10045.3.1.7", "P-256"), ("1.3.132.0.34", "P-384"), ("1.3.132.0.35", "P-521")];

/// The modulus size of an RSAPublicKey (SEQUENCE { modulus, exponent }).
fn rsa_bits(key: &[u8]) -> u32 {
    let modulus = SliceReader::new(key)
        .and_then(|mut r| r.sequence(|r| UintRef::decode(r).and_then(|n| UintRef::decode(r).map(|_| n))));
    match modulus.map(|n| n.as_bytes()) {
        Ok([first, rest @ ..]) => rest.len() as u32 * 8 + (8 - first.leading_zeros()),
        _ => 0,
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).expect("length checked")).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).expect("length checked")).to_string(),
        _ => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// RFC 3339, UTC, as the bridge writes it (`2027-11-27T15:00:00Z`).
fn date_text(t: der::DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minutes(),
        t.seconds()
    )
}

/// Seconds since the Unix epoch as RFC 3339, UTC; `None` out of range.
pub(super) fn rfc3339(unix_secs: u64) -> Option<String> {
    der::DateTime::from_unix_duration(Duration::from_secs(unix_secs)).ok().map(date_text)
}
