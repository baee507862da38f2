//! AMQP topic matching: routing keys and binding patterns are dot-separated words; `*` matches exactly one
//! word, `#` zero or more. FogFlow's keys end in a dot, which AMQP reads as a last, empty word, so `heartbeat.*`
//! matches `heartbeat.` and `Worker.001.*` matches `Worker.001.`.

/// Whether `routing_key` matches the binding `pattern`.
pub fn matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    match_words(&pattern, &key)
}

fn match_words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| match_words(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && match_words(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && match_words(rest, &key[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn fogflow_bindings() {
        assert!(matches("heartbeat.*", "heartbeat."));
        assert!(matches("orchestration.*", "orchestration."));
        assert!(matches("task.", "task."));
        assert!(matches("Master.001.", "Master.001."));
        assert!(matches("Worker.001.*", "Worker.001."));
        assert!(!matches("Worker.001.*", "Worker.001.2."));
        assert!(!matches("Worker.001.*", "Worker.0012."));
        assert!(!matches("task.", "heartbeat."));
        assert!(!matches("designer.*", "task."));
        assert!(matches("#", "anything.at.all"));
        assert!(matches("a.#", "a."));
        assert!(matches("a.#.z", "a.b.c.z"));
        assert!(!matches("a.*", "a"));
    }
}
