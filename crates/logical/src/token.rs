//! The kinds of token, shared by the token store and the auth methods that ask for one.

use serde::{Deserialize, Serialize};

/// Service tokens are stored; batch tokens are self-contained ciphertext.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    #[default]
    Service,
    Batch,
}

impl TokenType {
    /// The wire name (`service`, `batch`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Service => "service",
            TokenType::Batch => "batch",
        }
    }
}
