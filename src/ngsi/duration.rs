//! ISO 8601 durations as NGSI uses them for subscription `duration` and `throttling` (`PT1H`, `P1D`, `PT0.5S`).

use std::time::Duration;

use super::ParseError;

/// Parses an ISO 8601 duration. Months count as 30 days and years as 365 days, as Orion does.
pub fn parse_iso8601(what: &str, text: &str) -> Result<Duration, ParseError> {
    let parsed = iso8601::duration(text.trim())
        .map_err(|_| ParseError::new(format!("{what} `{text}` is not an ISO 8601 duration such as PT1H or P1D")))?;
    let duration: Duration = match parsed {
        iso8601::Duration::Weeks(weeks) => Duration::from_secs(u64::from(weeks) * 7 * 86_400),
        iso8601::Duration::YMDHMS { year, month, day, hour, minute, second, millisecond } => {
            let seconds = u64::from(year) * 365 * 86_400
                + u64::from(month) * 30 * 86_400
                + u64::from(day) * 86_400
                + u64::from(hour) * 3_600
                + u64::from(minute) * 60
                + u64::from(second);
            Duration::from_secs(seconds) + Duration::from_millis(u64::from(millisecond))
        }
    };
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_durations_parse() {
        assert_eq!(parse_iso8601("duration", "PT1H").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_iso8601("duration", "P1D").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_iso8601("throttling", "PT5S").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_iso8601("duration", "P1M").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_iso8601("duration", "PT10M").unwrap(), Duration::from_secs(600));
    }

    #[test]
    fn garbage_is_rejected_with_the_field_name() {
        let error = parse_iso8601("duration", "one hour").unwrap_err();
        assert!(error.message().starts_with("duration `one hour`"), "{error}");
    }
}
