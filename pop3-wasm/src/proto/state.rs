//! The three RFC 1939 states, plus the two ends of a session.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected, the greeting has not arrived yet.
    Greeting,
    Authorization,
    Transaction,
    /// QUIT was answered (deletions committed in TRANSACTION), or the
    /// connection ended.
    Closed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Greeting => "GREETING",
            State::Authorization => "AUTHORIZATION",
            State::Transaction => "TRANSACTION",
            State::Closed => "CLOSED",
        }
    }
}
