//! Task identity from input groups (spec §2.7 step 5): a group is a map from group key (`<Type>-<GroupBy>`)
//! to group value; its hash is FogFlow's `%08d` of FNV-1a-32 over the JSON of the values in key order, so task
//! ids (`Task.<topology>.<task>.<hash>`) and output ids (`<Type>.<hash>.<n>`) are deterministic and match
//! FogFlow's.

use std::collections::BTreeMap;

use serde_json::Value;

/// A group: key → value, keys sorted.
pub type Group = BTreeMap<String, Value>;

/// FNV-1a, 32 bits.
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The group's hash text (at least 8 digits).
pub fn group_hash(group: &Group) -> String {
    let mut text = String::new();
    for value in group.values() {
        text.push_str(&go_json(value));
    }
    format!("{:08}", fnv1a_32(text.as_bytes()))
}

/// Go's `encoding/json` text of a value: like serde_json, with map keys sorted (Go sorts map keys) and
/// `<`, `>`, `&` escaped as Go does.
fn go_json(value: &Value) -> String {
    let sorted = sort_keys(value);
    serde_json::to_string(&sorted)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> = map.iter().map(|(k, v)| (k, sort_keys(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// `Task.<topology>.<task>.<hash>`.
pub fn task_id(topology: &str, task: &str, hash: &str) -> String {
    format!("Task.{topology}.{task}.{hash}")
}

/// `<Type>.<hash>.<n>` for output `index` (0-based).
pub fn output_id(entity_type: &str, hash: &str, index: usize) -> String {
    format!("{entity_type}.{hash}.{}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn group_hash_is_deterministic_and_key_ordered() {
        let mut a = Group::new();
        a.insert("Temperature-EntityID".into(), json!("Device.Temp001"));
        a.insert("Rule-ALL".into(), json!("ALL"));
        let hash = group_hash(&a);
        // Rule-ALL sorts first: FNV-1a over "\"ALL\"\"Device.Temp001\"".
        assert_eq!(hash, format!("{:08}", fnv1a_32(b"\"ALL\"\"Device.Temp001\"")));
        assert!(hash.len() >= 8 && hash.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(task_id("Test", "Main", &hash), format!("Task.Test.Main.{hash}"));
        assert_eq!(output_id("Out", &hash, 0), format!("Out.{hash}.1"));
    }

    #[test]
    fn metadata_values_hash_as_go_json() {
        let mut g = Group::new();
        g.insert("PowerPanel-shop".into(), json!({"value":"01","name":"shop","type":"string"}));
        let expected = format!("{:08}", fnv1a_32(br#"{"name":"shop","type":"string","value":"01"}"#));
        assert_eq!(group_hash(&g), expected);
    }
}
