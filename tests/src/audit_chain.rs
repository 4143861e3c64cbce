//! The audit log as an auditor with nothing but the API reads it: every entry, and the
//! hash chain recomputed from the documented entry hash (docs/API.md, "Audit log").

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::server::Server;

/// Every audit entry, walking `GET /v1/audit` in pages.
pub fn audit_log(s: &Server) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut after = 0u64;
    loop {
        let r = s.get(
            &format!("/v1/audit?after={after}&limit=7"),
            Some(&s.tokens.auditor),
        );
        assert_eq!(r.status, 200, "GET /v1/audit: {r}");
        let items = r.json["items"].as_array().expect("items").clone();
        if items.is_empty() {
            assert!(r.json["next_after"].is_null(), "{r}");
            return entries;
        }
        after = r.json["next_after"].as_u64().expect("next_after");
        assert_eq!(Some(after), items.last().unwrap()["seq"].as_u64());
        entries.extend(items);
    }
}

/// The documented hash of an entry, from its JSON alone (docs/API.md, "Audit log").
pub fn entry_hash(e: &Value) -> String {
    let mut h = Sha256::new();
    h.update(b"ca-audit-v1");
    let mut field = |s: &str| {
        h.update(format!("{}:", s.len()).as_bytes());
        h.update(s.as_bytes());
        h.update(b",");
    };
    field(e["prev_hash"].as_str().unwrap());
    field(&e["seq"].as_u64().unwrap().to_string());
    for k in ["at", "actor", "action", "target"] {
        field(e[k].as_str().unwrap());
    }
    let details = e["details"].as_object().unwrap();
    field(&details.len().to_string());
    // serde_json's map keeps keys sorted, as the hash does.
    for (k, v) in details {
        field(k);
        field(v.as_str().unwrap());
    }
    hex::encode(h.finalize())
}

/// Checks the chain as an auditor with the log alone would.
pub fn check_chain(entries: &[Value]) {
    let mut prev = "0".repeat(64);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            e["seq"].as_u64(),
            Some(i as u64 + 1),
            "sequence without gaps: {e}"
        );
        assert_eq!(e["prev_hash"].as_str(), Some(prev.as_str()), "chained: {e}");
        assert_eq!(
            e["hash"].as_str().unwrap(),
            entry_hash(e),
            "hash as documented: {e}"
        );
        prev = e["hash"].as_str().unwrap().to_string();
    }
}
