//! Ways a server bent the protocol that the core tolerated. Each is recorded
//! once per session so a diagnosis (`pop3-check --serverinfo`) can list them.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Deviation {
    /// `+OKtext` or `-ERRtext`: no space between the status and its text.
    NoSpaceAfterStatus,
    /// `+OK`/`-ERR` in another case (`+ok`).
    StatusCase,
    /// A SASL continuation that is a bare `+` (RFC 5034 wants `+ `).
    BareContinuation,
    /// A line longer than the 512 octets RFC 1939 allows for responses.
    LongLine,
    /// A line ended by LF alone, not CRLF.
    BareLf,
    /// A line in a multi-line body that starts with `.` but was not
    /// byte-stuffed (`.x` instead of `..x`); the dot was removed as RFC 1939
    /// says.
    UnstuffedDot,
    /// Bytes that arrived after `+OK` to STLS, before the TLS handshake,
    /// were discarded (RFC 2595 § 4 / CVE-2011-0411 class injection).
    DataAfterStls,
}

impl Deviation {
    /// A stable identifier, used in JSON reports.
    pub fn id(self) -> &'static str {
        match self {
            Deviation::NoSpaceAfterStatus => "no-space-after-status",
            Deviation::StatusCase => "status-case",
            Deviation::BareContinuation => "bare-continuation",
            Deviation::LongLine => "long-line",
            Deviation::BareLf => "bare-lf",
            Deviation::UnstuffedDot => "unstuffed-dot",
            Deviation::DataAfterStls => "data-after-stls",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Deviation::NoSpaceAfterStatus => "status indicator not followed by a space",
            Deviation::StatusCase => "status indicator not in upper case",
            Deviation::BareContinuation => "SASL continuation '+' without a space",
            Deviation::LongLine => "response line longer than 512 octets",
            Deviation::BareLf => "line ended by LF without CR",
            Deviation::UnstuffedDot => "line starting with '.' that was not dot-stuffed",
            Deviation::DataAfterStls => "data sent after +OK to STLS, before the TLS handshake",
        }
    }
}

/// The set of deviations seen, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deviations(Vec<Deviation>);

impl Deviations {
    pub fn record(&mut self, d: Deviation) {
        if !self.0.contains(&d) {
            self.0.push(d);
        }
    }

    pub fn as_slice(&self) -> &[Deviation] {
        &self.0
    }
}
