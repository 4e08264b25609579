//! RFC 4013 SASLprep for SCRAM passwords: map, normalise (NFKC), refuse
//! prohibited characters. The Unicode normalisation itself is the caller's
//! (in wasm, JavaScript's `String.prototype.normalize`, which every runtime
//! has): carrying the tables in the module would double its size.

use super::sasl::SaslError;

/// RFC 3454 C.1.2: non-ASCII space characters, mapped to SPACE.
fn is_non_ascii_space(c: char) -> bool {
    matches!(c, '\u{00A0}' | '\u{1680}' | '\u{2000}'..='\u{200B}' | '\u{202F}' | '\u{205F}' | '\u{3000}')
}

/// RFC 3454 B.1: commonly mapped to nothing.
fn maps_to_nothing(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{1806}'
            | '\u{180B}'..='\u{180D}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
    )
}

/// RFC 4013 § 2.3: prohibited output (RFC 3454 C.1.2 – C.9).
fn is_prohibited(c: char) -> bool {
    let u = c as u32;
    is_non_ascii_space(c)
        || u <= 0x1F
        || u == 0x7F
        || (0x80..=0x9F).contains(&u)
        || matches!(u, 0x06DD | 0x070F | 0x180E | 0x200C | 0x200D | 0x2028 | 0x2029 | 0xFEFF)
        || (0x2060..=0x2063).contains(&u)
        || (0x206A..=0x206F).contains(&u)
        || (0xFFF9..=0xFFFD).contains(&u)
        || (0x1D173..=0x1D17A).contains(&u)
        || (0xE000..=0xF8FF).contains(&u)
        || (0xF0000..=0xFFFFD).contains(&u)
        || (0x100000..=0x10FFFD).contains(&u)
        || (0xFDD0..=0xFDEF).contains(&u)
        || (u & 0xFFFE) == 0xFFFE
        || (0x2FF0..=0x2FFB).contains(&u)
        || matches!(u, 0x0340 | 0x0341 | 0x200E | 0x200F)
        || (0x202A..=0x202E).contains(&u)
        || u == 0xE0001
        || (0xE0020..=0xE007F).contains(&u)
}

/// SASLprep with `nfkc` as the normalisation step.
pub fn saslprep(input: &str, nfkc: fn(&str) -> String) -> Result<String, SaslError> {
    let mapped: String = input
        .chars()
        .filter(|c| !maps_to_nothing(*c))
        .map(|c| if is_non_ascii_space(c) { ' ' } else { c })
        .collect();
    // ASCII is its own NFKC: skip the call for the common case.
    let normalized = if mapped.is_ascii() { mapped } else { nfkc(&mapped) };
    if let Some(c) = normalized.chars().find(|c| is_prohibited(*c)) {
        return Err(SaslError(format!(
            "the password contains a character SASLprep prohibits (U+{:04X})",
            c as u32
        )));
    }
    Ok(normalized)
}

/// No normalisation: for hosts that cannot normalise. ASCII and
/// already-normalised passwords (the usual case) are unaffected.
pub fn no_nfkc(s: &str) -> String {
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nfkc(s: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        s.nfkc().collect()
    }

    #[test]
    fn rfc4013_examples() {
        assert_eq!(saslprep("I\u{00AD}X", nfkc).unwrap(), "IX");
        assert_eq!(saslprep("user", nfkc).unwrap(), "user");
        assert_eq!(saslprep("USER", nfkc).unwrap(), "USER");
        assert_eq!(saslprep("\u{00AA}", nfkc).unwrap(), "a");
        assert_eq!(saslprep("\u{2168}", nfkc).unwrap(), "IX");
        assert!(saslprep("\u{0007}", nfkc).is_err());
        assert!(saslprep("a\u{E000}b", nfkc).is_err());
    }

    #[test]
    fn spaces_are_mapped_and_composed_text_kept() {
        assert_eq!(saslprep("a\u{00A0}b", nfkc).unwrap(), "a b");
        assert_eq!(saslprep("pässwörd-Ω9", nfkc).unwrap(), "pässwörd-Ω9");
        assert_eq!(saslprep("pa\u{0308}sswo\u{0308}rd", nfkc).unwrap(), "pässwörd");
    }
}
