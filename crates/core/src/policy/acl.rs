//! The compiled ACL of one token: which rule wins for a path, and whether it allows a request.
//!
//! Every authenticated request goes through [`Acl::check`], so the merge of a token's policies
//! is done once (and cached by the store), leaving only a hash lookup for exact paths and a
//! scan of the wildcard patterns per request. Precedence follows Vault's rules exactly:
//! clients write policies against Vault's documentation and a different winner would grant or
//! deny the wrong thing.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::AclDecision;
use crate::Operation;
use strongroom_policy::{
    CREATE, Caps, DELETE, DENY, LIST, PATCH, PathRule, READ, SUDO, UPDATE, cap_names,
};

/// The merged permissions of one pattern across all of a token's policies.
#[derive(Debug, Clone, Default)]
struct Perms {
    caps: Caps,
    required: Vec<String>,
    allowed: BTreeMap<String, Vec<Value>>,
    denied: BTreeMap<String, Vec<Value>>,
    min_wrapping_ttl: Option<Duration>,
    max_wrapping_ttl: Option<Duration>,
    /// Which policy granted which capabilities, for audit's `policy_results`.
    grants: Vec<(String, Caps)>,
}

impl Perms {
    /// Folds one policy's rule for this pattern into the merged permissions.
    fn merge(&mut self, policy: &str, rule: &PathRule) {
        self.grants.push((policy.to_owned(), rule.caps));
        if self.caps & DENY != 0 {
            return;
        }
        if rule.caps & DENY != 0 {
            self.caps = DENY;
            self.allowed.clear();
            self.denied.clear();
            return;
        }
        self.caps |= rule.caps;
        // The tightest wrapping bounds win.
        self.min_wrapping_ttl = min_opt(self.min_wrapping_ttl, rule.min_wrapping_ttl);
        self.max_wrapping_ttl = min_opt(self.max_wrapping_ttl, rule.max_wrapping_ttl);
        merge_params(&mut self.allowed, &rule.allowed);
        merge_params(&mut self.denied, &rule.denied);
        for r in &rule.required {
            if !self.required.contains(r) {
                self.required.push(r.clone());
            }
        }
    }
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Merges parameter value lists: `[]` (any value) absorbs a list; lists concatenate.
fn merge_params(into: &mut BTreeMap<String, Vec<Value>>, from: &BTreeMap<String, Vec<Value>>) {
    for (key, values) in from {
        match into.get_mut(key) {
            None => {
                into.insert(key.clone(), values.clone());
            }
            Some(existing) if existing.is_empty() || values.is_empty() => existing.clear(),
            Some(existing) => existing.extend(values.iter().cloned()),
        }
    }
}

/// One pattern with its precomputed priority keys.
#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    /// Pattern segments (without the trailing `*`), for `+` matching.
    segments: Vec<String>,
    glob: bool,
    /// Byte index of the first `+` segment or `*`; `usize::MAX` for exact patterns.
    first_wildcard: usize,
    plus_count: usize,
    perms: Perms,
}

impl Rule {
    fn new(pattern: &str) -> Rule {
        let glob = pattern.ends_with('*');
        let body = pattern.strip_suffix('*').unwrap_or(pattern);
        let segments: Vec<String> = body.split('/').map(str::to_owned).collect();
        let mut first_wildcard = if glob { body.len() } else { usize::MAX };
        let mut offset = 0;
        let mut plus_count = 0;
        for seg in &segments {
            if seg == "+" {
                plus_count += 1;
                first_wildcard = first_wildcard.min(offset);
            }
            offset += seg.len() + 1;
        }
        Rule {
            pattern: pattern.to_owned(),
            segments,
            glob,
            first_wildcard,
            plus_count,
            perms: Perms::default(),
        }
    }

    fn matches(&self, path: &str) -> bool {
        if self.plus_count == 0 {
            // Exact patterns live in the hash map; here only prefix globs.
            return self.glob && path.starts_with(&self.pattern[..self.pattern.len() - 1]);
        }
        let n = self.segments.len();
        if self.glob {
            // The last pattern segment is a prefix of the rest of the path, slashes included.
            let parts: Vec<&str> = path.splitn(n, '/').collect();
            if parts.len() != n {
                return false;
            }
            let (last_pat, head_pat) = match self.segments.split_last() {
                Some(x) => x,
                None => return false,
            };
            head_pat.iter().zip(&parts).all(|(p, s)| p == "+" || p == s)
                && parts[n - 1].starts_with(last_pat.as_str())
        } else {
            let parts: Vec<&str> = path.split('/').collect();
            parts.len() == n
                && self
                    .segments
                    .iter()
                    .zip(&parts)
                    .all(|(p, s)| p == "+" || p == s)
        }
    }

    /// Vault's precedence between two matching patterns: `Greater` means `self` wins.
    fn priority(&self, other: &Rule) -> Ordering {
        // 1. The later the first wildcard, the higher.
        self.first_wildcard
            .cmp(&other.first_wildcard)
            // 2. Not ending in `*` beats ending in `*`.
            .then_with(|| other.glob.cmp(&self.glob))
            // 3. Fewer `+` segments beat more.
            .then_with(|| other.plus_count.cmp(&self.plus_count))
            // 4. Longer beats shorter.
            .then_with(|| self.pattern.len().cmp(&other.pattern.len()))
            // 5. Lexicographically larger beats smaller.
            .then_with(|| self.pattern.cmp(&other.pattern))
    }
}

#[derive(Debug, Default)]
struct Compiled {
    root: bool,
    exact: HashMap<String, Rule>,
    wildcard: Vec<Rule>,
}

/// The compiled union of a token's policies. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Acl {
    inner: Arc<Compiled>,
}

impl Acl {
    /// The ACL of a root token: everything is allowed.
    pub(crate) fn root() -> Acl {
        Acl {
            inner: Arc::new(Compiled {
                root: true,
                ..Compiled::default()
            }),
        }
    }

    /// Merges named policies' rules; templated paths (`{{...}}`) need identity and are skipped.
    pub(crate) fn compile<'a>(
        policies: impl IntoIterator<Item = (&'a str, &'a [PathRule])>,
    ) -> Acl {
        let mut by_pattern: BTreeMap<String, Rule> = BTreeMap::new();
        for (name, rules) in policies {
            for rule in rules {
                if rule.pattern.contains("{{") {
                    continue;
                }
                by_pattern
                    .entry(rule.pattern.clone())
                    .or_insert_with(|| Rule::new(&rule.pattern))
                    .perms
                    .merge(name, rule);
            }
        }
        let mut compiled = Compiled::default();
        for (pattern, rule) in by_pattern {
            if rule.glob || rule.plus_count > 0 {
                compiled.wildcard.push(rule);
            } else {
                compiled.exact.insert(pattern, rule);
            }
        }
        Acl {
            inner: Arc::new(compiled),
        }
    }

    /// The winning rule for `path`. LIST requests also match their path with a trailing `/`
    /// and exact rules written without it.
    fn winner(&self, path: &str, list: bool) -> Option<&Rule> {
        let c = &self.inner;
        if let Some(rule) = c.exact.get(path) {
            return Some(rule);
        }
        let listed;
        let path = if list {
            let bare = path.strip_suffix('/').unwrap_or(path);
            if let Some(rule) = c.exact.get(bare) {
                return Some(rule);
            }
            listed = format!("{bare}/");
            if let Some(rule) = c.exact.get(&listed) {
                return Some(rule);
            }
            if bare.is_empty() {
                path
            } else {
                listed.as_str()
            }
        } else {
            path
        };
        c.wildcard
            .iter()
            .filter(|r| r.matches(path))
            .max_by(|a, b| a.priority(b))
    }

    /// Evaluates `op` on `path` with request `data` (for parameter constraints).
    pub fn check(&self, op: Operation, path: &str, data: &Map<String, Value>) -> AclDecision {
        if self.inner.root {
            return AclDecision {
                allowed: true,
                sudo: true,
                root: true,
                granting_policies: vec![super::builtin::ROOT.into()],
                ..AclDecision::default()
            };
        }
        let Some(rule) = self.winner(path, op == Operation::List) else {
            return AclDecision::default();
        };
        let perms = &rule.perms;
        let needed = match op {
            Operation::Read => READ,
            Operation::Create => CREATE,
            Operation::Update => UPDATE,
            Operation::Patch => PATCH,
            Operation::Delete => DELETE,
            Operation::List => LIST,
        };
        let mut decision = AclDecision {
            sudo: perms.caps & SUDO != 0 && perms.caps & DENY == 0,
            min_wrapping_ttl: perms.min_wrapping_ttl,
            max_wrapping_ttl: perms.max_wrapping_ttl,
            matched_pattern: Some(rule.pattern.clone()),
            capabilities: cap_names(perms.caps),
            ..AclDecision::default()
        };
        if perms.caps & DENY != 0 || perms.caps & needed == 0 {
            return decision;
        }
        // Merged bounds from several policies can contradict each other.
        if let (Some(min), Some(max)) = (perms.min_wrapping_ttl, perms.max_wrapping_ttl)
            && max < min
        {
            return decision;
        }
        if matches!(
            op,
            Operation::Read | Operation::Create | Operation::Update | Operation::Patch
        ) && !parameters_allowed(perms, data)
        {
            return decision;
        }
        decision.allowed = true;
        decision.granting_policies = perms
            .grants
            .iter()
            .filter(|(_, caps)| caps & needed != 0)
            .map(|(name, _)| name.clone())
            .collect();
        decision
    }

    /// The sorted capabilities granted on `path` (`["root"]` for root, `["deny"]` for none).
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        if self.inner.root {
            return vec![super::builtin::ROOT.into()];
        }
        match self.winner(path, false) {
            Some(rule) => cap_names(rule.perms.caps),
            None => vec!["deny".into()],
        }
    }
}

/// Required, denied and allowed parameter checks, in Vault's order.
fn parameters_allowed(perms: &Perms, data: &Map<String, Value>) -> bool {
    let keys: Vec<(String, &Value)> = data.iter().map(|(k, v)| (k.to_lowercase(), v)).collect();
    if !perms
        .required
        .iter()
        .all(|r| keys.iter().any(|(k, _)| k == r))
    {
        return false;
    }
    if keys.is_empty() {
        return true;
    }
    if !perms.denied.is_empty() {
        if perms.denied.contains_key("*") {
            return false;
        }
        for (key, value) in &keys {
            if let Some(denied) = perms.denied.get(key)
                && (denied.is_empty() || any_value_listed(value, denied))
            {
                return false;
            }
        }
    }
    if perms.allowed.is_empty() {
        return true;
    }
    let allow_any_key = perms.allowed.contains_key("*");
    keys.iter()
        .all(|(key, value)| match perms.allowed.get(key) {
            None => allow_any_key,
            Some(allowed) => allowed.is_empty() || every_value_listed(value, allowed),
        })
}

/// Denied values: one listed element is enough to refuse a list-valued parameter.
fn any_value_listed(value: &Value, list: &[Value]) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| value_listed(v, list)),
        v => value_listed(v, list),
    }
}

/// Allowed values: every element of a list-valued parameter must be allowed.
fn every_value_listed(value: &Value, list: &[Value]) -> bool {
    match value {
        Value::Array(items) => items.iter().all(|v| value_listed(v, list)),
        v => value_listed(v, list),
    }
}

/// Whether `value` equals one list entry; string entries may glob with a leading and/or
/// trailing `*`. Scalars compare by their string form, since clients send `"10"` and `10`
/// interchangeably.
fn value_listed(value: &Value, list: &[Value]) -> bool {
    let text = match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    list.iter().any(|entry| match (entry, &text) {
        (Value::String(pat), Some(t)) => glob_match(pat, t),
        (Value::Number(n), Some(t)) => n.to_string() == *t,
        (Value::Bool(b), Some(t)) => b.to_string() == *t,
        (e, _) => e == value,
    })
}

fn glob_match(pattern: &str, text: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) if pattern.len() >= 2 => text.contains(&pattern[1..pattern.len() - 1]),
        (Some(suffix), _) => text.ends_with(suffix),
        (_, Some(prefix)) => text.starts_with(prefix),
        _ => pattern == text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use strongroom_policy::parse_policy;

    fn acl(texts: &[(&str, &str)]) -> Acl {
        let parsed: Vec<(String, Vec<PathRule>)> = texts
            .iter()
            .map(|(n, t)| ((*n).to_owned(), parse_policy(t).unwrap().paths))
            .collect();
        Acl::compile(parsed.iter().map(|(n, r)| (n.as_str(), r.as_slice())))
    }

    fn caps(a: &Acl, path: &str) -> Vec<String> {
        a.capabilities(path)
    }

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn exact_beats_glob_and_glob_matches_prefixes() {
        // Why: rule 1 — an exact path is the most specific statement an operator can make.
        let a = acl(&[(
            "p",
            r#"path "secret/*" { capabilities = ["read"] }
               path "secret/zip-*" { capabilities = ["list"] }
               path "secret/a" { capabilities = ["update"] }"#,
        )]);
        assert_eq!(caps(&a, "secret/a"), vec!["update"]);
        assert_eq!(caps(&a, "secret/zip-zap/zong"), vec!["list"]);
        assert_eq!(caps(&a, "secret/b/c"), vec!["read"]);
        assert_eq!(caps(&a, "other"), vec!["deny"]);
    }

    #[test]
    fn later_first_wildcard_wins() {
        // Why: rule 1 — `secret/+/teamb` (first wildcard at 7) loses to `secret/a/*` (at 9).
        let a = acl(&[(
            "p",
            r#"path "secret/+/teamb" { capabilities = ["read"] }
               path "secret/a/*" { capabilities = ["list"] }"#,
        )]);
        assert_eq!(caps(&a, "secret/a/teamb"), vec!["list"]);
        assert_eq!(caps(&a, "secret/b/teamb"), vec!["read"]);
    }

    #[test]
    fn not_ending_in_star_wins_at_same_wildcard_position() {
        // Why: rule 2 — `secret/+` (no trailing *) beats `secret/*`.
        let a = acl(&[(
            "p",
            r#"path "secret/*" { capabilities = ["read"] }
               path "secret/+" { capabilities = ["update"] }"#,
        )]);
        assert_eq!(caps(&a, "secret/x"), vec!["update"]);
        assert_eq!(caps(&a, "secret/x/y"), vec!["read"]);
    }

    #[test]
    fn fewer_plus_segments_win() {
        // Why: rule 3 — `secret/+/+/foo/*` loses to `secret/*`.
        let a = acl(&[(
            "p",
            r#"path "secret/+/+/foo/*" { capabilities = ["update"] }
               path "secret/*" { capabilities = ["read"] }"#,
        )]);
        assert_eq!(caps(&a, "secret/a/b/foo/c"), vec!["read"]);
    }

    #[test]
    fn longer_pattern_wins() {
        // Why: rule 4 — with the same first wildcard, the longer pattern is more specific.
        let a = acl(&[(
            "p",
            r#"path "secret/+/x*" { capabilities = ["read"] }
               path "secret/+/xy*" { capabilities = ["update"] }"#,
        )]);
        assert_eq!(caps(&a, "secret/q/xyz"), vec!["update"]);
        assert_eq!(caps(&a, "secret/q/xz"), vec!["read"]);
    }

    #[test]
    fn lexicographically_larger_wins_as_last_resort() {
        // Why: rule 5 — ties must resolve deterministically, the larger string winning.
        let a = acl(&[(
            "p",
            r#"path "secret/+/a/+" { capabilities = ["read"] }
               path "secret/+/+/b" { capabilities = ["update"] }"#,
        )]);
        // Same first wildcard, no star, same plus count, same length: "secret/+/a/+" > "secret/+/+/b".
        assert_eq!(caps(&a, "secret/x/a/b"), vec!["read"]);
    }

    #[test]
    fn same_pattern_unions_and_deny_wins() {
        // Why: capabilities of the same pattern across policies add up, but deny overrides.
        let a = acl(&[
            ("a", r#"path "s/x" { capabilities = ["read"] }"#),
            ("b", r#"path "s/x" { capabilities = ["update", "sudo"] }"#),
        ]);
        assert_eq!(caps(&a, "s/x"), vec!["read", "sudo", "update"]);
        let d = a.check(Operation::Read, "s/x", &Map::new());
        assert!(d.allowed && d.sudo);
        assert_eq!(d.granting_policies, vec!["a"]);
        let a = acl(&[
            ("a", r#"path "s/x" { capabilities = ["read", "sudo"] }"#),
            ("b", r#"path "s/x" { capabilities = ["deny"] }"#),
        ]);
        assert_eq!(caps(&a, "s/x"), vec!["deny"]);
        let d = a.check(Operation::Read, "s/x", &Map::new());
        assert!(!d.allowed && !d.sudo);
    }

    #[test]
    fn list_matches_with_and_without_trailing_slash() {
        // Why: LIST paths are prefixes ending in `/`; `secret/*` must allow LIST secret/.
        let a = acl(&[(
            "p",
            r#"path "secret/*" { capabilities = ["list"] }
               path "kv/dir" { capabilities = ["list"] }"#,
        )]);
        assert!(a.check(Operation::List, "secret", &Map::new()).allowed);
        assert!(a.check(Operation::List, "secret/sub/", &Map::new()).allowed);
        assert!(a.check(Operation::List, "kv/dir/", &Map::new()).allowed);
        assert!(!a.check(Operation::Read, "secret/sub", &Map::new()).allowed);
    }

    #[test]
    fn parameter_constraints() {
        // Why: allowed/denied/required parameters and value globs restrict writes.
        let a = acl(&[(
            "p",
            r#"path "s/r" {
                 capabilities = ["update"]
                 required_parameters = ["owner"]
                 allowed_parameters = { "owner" = [], "env" = ["dev", "prod-*"] }
                 denied_parameters = { "env" = ["prod-secret"] }
               }"#,
        )]);
        let ok = |v: Value| a.check(Operation::Update, "s/r", &data(v)).allowed;
        assert!(ok(json!({"owner": "me"})));
        assert!(ok(json!({"owner": "me", "env": "dev"})));
        assert!(ok(json!({"owner": "me", "env": "prod-eu"})));
        assert!(!ok(json!({"owner": "me", "env": "prod-secret"})));
        assert!(!ok(json!({"owner": "me", "env": "stage"})));
        assert!(!ok(json!({"env": "dev"})), "required owner missing");
        assert!(!ok(json!({"owner": "me", "other": 1})), "unlisted key");
        assert!(ok(json!({"owner": "me", "env": ["dev", "prod-x"]})));
        assert!(!ok(json!({"owner": "me", "env": ["dev", "stage"]})));
    }

    #[test]
    fn value_globs() {
        // Why: prefix, suffix and contains globs are how operators constrain values.
        assert!(glob_match("foo*", "foobar"));
        assert!(glob_match("*bar", "foobar"));
        assert!(glob_match("*oba*", "foobar"));
        assert!(!glob_match("*x*", "foobar"));
        assert!(glob_match("*", "anything"));
        assert!(!glob_match("foo", "foobar"));
    }

    #[test]
    fn wrapping_bounds_take_the_lowest() {
        // Why: when policies overlap, the tightest wrapping bounds apply.
        let a = acl(&[
            (
                "a",
                "path \"w\" {\n capabilities = [\"update\"]\n min_wrapping_ttl = \"10s\"\n max_wrapping_ttl = \"100s\"\n}",
            ),
            (
                "b",
                "path \"w\" {\n capabilities = [\"update\"]\n max_wrapping_ttl = \"60s\"\n}",
            ),
        ]);
        let d = a.check(Operation::Update, "w", &Map::new());
        assert!(d.allowed);
        assert_eq!(d.min_wrapping_ttl, Some(Duration::from_secs(10)));
        assert_eq!(d.max_wrapping_ttl, Some(Duration::from_secs(60)));
    }
}
