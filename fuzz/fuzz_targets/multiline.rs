//! The multi-line decoder (terminator detection, dot-unstuffing).
//!
//! Input: `[chunk, wire bytes…]`. Checks: the result does not depend on how
//! the input is split; it never consumes past the terminator; what follows
//! the terminator is left alone; the output is never longer than the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_wasm::proto::BodyDecoder;

fn decode(wire: &[u8], chunk: usize) -> (Vec<u8>, usize, bool, Vec<&'static str>) {
    let mut d = BodyDecoder::new();
    let mut out = Vec::new();
    let mut dev = Default::default();
    let mut used = 0;
    for piece in wire.chunks(chunk.max(1)) {
        if d.is_done() {
            break;
        }
        let n = d.decode(piece, &mut out, &mut dev);
        assert!(n <= piece.len());
        if !d.is_done() {
            assert_eq!(n, piece.len(), "stopped early without a terminator");
        }
        used += n;
    }
    assert_eq!(d.wire_len(), used as u64);
    let devs = dev_ids(&dev);
    (out, used, d.is_done(), devs)
}

fn dev_ids(dev: &impl std::fmt::Debug) -> Vec<&'static str> {
    // The set of deviations is compared through its Debug form's variants.
    let s = format!("{dev:?}");
    ["BareLf", "UnstuffedDot"].into_iter().filter(|v| s.contains(v)).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, wire)) = data.split_first() else { return };
    let whole = decode(wire, wire.len().max(1));
    let split = decode(wire, chunk as usize);
    let bytewise = decode(wire, 1);
    assert_eq!(whole.0, split.0, "output depends on chunking ({chunk})");
    assert_eq!((whole.1, whole.2), (split.1, split.2));
    assert_eq!(whole.0, bytewise.0);
    assert_eq!((whole.1, whole.2), (bytewise.1, bytewise.2));
    assert_eq!(whole.3, bytewise.3);
    assert!(whole.0.len() <= whole.1);
    if whole.2 {
        // The consumed part ends with the terminator line.
        let used = &wire[..whole.1];
        assert!(used.ends_with(b"\n"), "ended without a line end");
    } else {
        assert_eq!(whole.1, wire.len());
    }
});
