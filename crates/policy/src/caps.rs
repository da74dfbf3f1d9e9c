//! Capabilities: the bits a path rule grants, and their names.

/// One capability bit; a rule's grant is the OR of these.
pub type Caps = u16;
pub const DENY: Caps = 1;
pub const CREATE: Caps = 1 << 1;
pub const READ: Caps = 1 << 2;
pub const UPDATE: Caps = 1 << 3;
pub const DELETE: Caps = 1 << 4;
pub const LIST: Caps = 1 << 5;
pub const SUDO: Caps = 1 << 6;
pub const PATCH: Caps = 1 << 7;
pub const SUBSCRIBE: Caps = 1 << 8;
pub const RECOVER: Caps = 1 << 9;

/// Capability names in the order of their bits (`capabilities` endpoints sort by name).
pub const CAP_NAMES: &[(&str, Caps)] = &[
    ("deny", DENY),
    ("create", CREATE),
    ("read", READ),
    ("update", UPDATE),
    ("delete", DELETE),
    ("list", LIST),
    ("sudo", SUDO),
    ("patch", PATCH),
    ("subscribe", SUBSCRIBE),
    ("recover", RECOVER),
];

/// Sorted capability names of `caps` (`["deny"]` when nothing is granted).
pub fn cap_names(caps: Caps) -> Vec<String> {
    if caps & DENY != 0 || caps == 0 {
        return vec!["deny".into()];
    }
    let mut names: Vec<String> = CAP_NAMES
        .iter()
        .filter(|(_, b)| caps & b != 0)
        .map(|(n, _)| (*n).to_owned())
        .collect();
    names.sort();
    names
}
