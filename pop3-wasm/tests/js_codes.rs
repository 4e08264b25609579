//! The JavaScript constants and TypeScript types of the error codes
//! (`pop3-wasm/js/error-codes.js`, `.d.ts`) are generated from the Rust
//! lists (`proto::ErrorCode`, `wire::TlsReason`): this test fails when the
//! files differ from what the lists give, and rewrites them when run with
//! `POP3_WASM_BLESS=1`.

use std::path::PathBuf;

use pop3_wasm::{proto::ErrorCode, wire::TlsReason};

const HEADER: &str = "// Generated from the Rust side (pop3_wasm::proto::ErrorCode, pop3_wasm::wire::TlsReason)\n\
// by pop3-wasm/tests/js_codes.rs: do not edit. After changing the lists, run\n\
// `POP3_WASM_BLESS=1 cargo test -p pop3-wasm --test js_codes`.\n";

fn constant(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

fn reason_doc(r: TlsReason) -> String {
    format!("Pop3Error.reason on TLS_FAILED: {}.", r.sentence())
}

fn js() -> String {
    let mut out = String::from(HEADER);
    out.push_str("\n/** `Pop3Error.code`: what went wrong. */\nexport const ErrorCode = Object.freeze({\n");
    for c in ErrorCode::ALL {
        out.push_str(&format!("  /** {} */\n  {}: '{}',\n", c.description(), c.as_str(), c.as_str()));
    }
    out.push_str("});\n\n/** `Pop3Error.reason` on TLS_FAILED: why, in one word. */\nexport const TlsReason = Object.freeze({\n");
    for r in TlsReason::ALL {
        out.push_str(&format!("  /** {} */\n  {}: '{}',\n", reason_doc(r), constant(r.as_str()), r.as_str()));
    }
    out.push_str("});\n");
    out
}

fn dts() -> String {
    let mut out = String::from(HEADER);
    out.push_str("\n/** `Pop3Error.code`: what went wrong. */\nexport declare const ErrorCode: {\n");
    for c in ErrorCode::ALL {
        out.push_str(&format!(
            "  /** {} */\n  readonly {}: '{}';\n",
            c.description(),
            c.as_str(),
            c.as_str()
        ));
    }
    out.push_str("};\nexport type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];\n\n");
    out.push_str(
        "/** `Pop3Error.reason` on TLS_FAILED: why, in one word. */\nexport declare const TlsReason: {\n",
    );
    for r in TlsReason::ALL {
        out.push_str(&format!(
            "  /** {} */\n  readonly {}: '{}';\n",
            reason_doc(r),
            constant(r.as_str()),
            r.as_str()
        ));
    }
    out.push_str("};\nexport type TlsReason = (typeof TlsReason)[keyof typeof TlsReason];\n");
    out
}

#[test]
fn the_js_error_codes_are_generated_from_the_rust_lists() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
    let bless = std::env::var_os("POP3_WASM_BLESS").is_some();
    for (file, want) in [("error-codes.js", js()), ("error-codes.d.ts", dts())] {
        let path = dir.join(file);
        if bless {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{file} is not what the Rust lists give: run POP3_WASM_BLESS=1 cargo test -p pop3-wasm --test js_codes"
        );
    }
}
