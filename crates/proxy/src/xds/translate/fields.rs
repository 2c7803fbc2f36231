//! Finds the fields of an Envoy message that are set but not understood. Each translator
//! clears the fields it handles from a copy of the message; whatever still differs from the
//! message's default is unsupported and the resource is rejected naming those fields, so
//! nothing is ever silently ignored.

/// Names of the top-level fields where `rest` differs from `M::default()`.
pub fn leftover<M: std::fmt::Debug + Default + PartialEq>(rest: &M) -> Vec<String> {
    if *rest == M::default() {
        return Vec::new();
    }
    let set = top_level_fields(&format!("{rest:?}"));
    let unset = top_level_fields(&format!("{:?}", M::default()));
    set.into_iter()
        .filter(|(name, value)| {
            unset
                .iter()
                .find(|(other, _)| other == name)
                .is_none_or(|(_, default)| default != value)
        })
        .map(|(name, _)| name.trim_start_matches("r#").to_string())
        .collect()
}

/// Splits `Name { a: x, b: Some(Y { .. }) }` into `[("a", "x"), ("b", "Some(..)")]`.
fn top_level_fields(debug: &str) -> Vec<(String, String)> {
    let Some(open) = debug.find('{') else {
        return Vec::new();
    };
    let body = debug[open + 1..].trim_end().trim_end_matches('}');
    let mut fields = Vec::new();
    let mut depth = 0i32;
    let mut in_string = false;
    let mut escaped = false;
    let mut start = 0;
    for (index, ch) in body.char_indices() {
        if in_string {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                push_field(&body[start..index], &mut fields);
                start = index + 1;
            }
            _ => {}
        }
    }
    push_field(&body[start..], &mut fields);
    fields
}

fn push_field(text: &str, fields: &mut Vec<(String, String)>) {
    if let Some((name, value)) = text.split_once(':') {
        fields.push((name.trim().to_string(), value.trim().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lateen_xds::pb::envoy::config::cluster::v3::Cluster;

    #[test]
    fn names_the_set_fields() {
        let cluster = Cluster {
            alt_stat_name: "x, \"y\" }".into(),
            close_connections_on_host_health_failure: true,
            ..Default::default()
        };
        assert_eq!(
            leftover(&cluster),
            vec![
                "alt_stat_name".to_string(),
                "close_connections_on_host_health_failure".to_string()
            ]
        );
        assert!(leftover(&Cluster::default()).is_empty());
    }
}
