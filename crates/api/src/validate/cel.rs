//! A syntax check of CEL expressions (the grammar of cel-spec, without evaluating anything), for
//! Telemetry's `accessLogging[].filter.expression`: Istio refuses what cel-go cannot parse.
//! The grammar is lateen-cel's, the one lateen-proxy's evaluator parses with.

/// Checks that `text` parses as one CEL expression; the error says what was found where.
pub(crate) fn check_syntax(text: &str) -> Result<(), String> {
    lateen_cel::parse(text)
        .map(drop)
        .map_err(|error| error.reason())
}

#[cfg(test)]
mod tests {
    use super::check_syntax;

    #[test]
    fn gives_the_parsers_reason() {
        assert_eq!(
            check_syntax("response.code >= 400 || request.headers['x'] == 'on'"),
            Ok(())
        );
        assert_eq!(
            check_syntax("response.code 400"),
            Err("unexpected literal".to_string())
        );
    }
}
