//! What of a spec is never shown: the values of `env` variables whose names say they are secret
//! (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*KEY*`, ...). They still reach the task (the TaskInfo
//! carries them); only what people and logs see is redacted: `Debug` of a [`Spec`], the spec file
//! served by the status server, anything built from either.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};

/// What a redacted value is shown as.
pub const REDACTED: &str = "<redacted>";

/// Parts of a variable name that mark its value as secret, matched case-insensitively anywhere
/// in the name (`DB_PASSWORD`, `github_token`, `AWS_SECRET_ACCESS_KEY`).
const SECRET_MARKS: [&str; 6] = ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL"];

/// Whether the value of the environment variable `name` is secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKS.iter().any(|mark| upper.contains(mark))
}

/// `env` as it may be shown: secret values replaced by [`REDACTED`].
pub fn env_for_display(env: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    env.iter()
        .map(|(name, value)| {
            let shown = if is_secret_name(name) {
                REDACTED
            } else {
                value.as_str()
            };
            (name.as_str(), shown)
        })
        .collect()
}

/// The text of a spec file with the values of secret `env` variables replaced by `"<redacted>"`,
/// however the table is written (`[env]`, inline, dotted keys). In a file that does not parse as
/// TOML, where values are cannot be told exactly: every line that mentions a secret-looking name
/// is cut after its first `=` or `:`.
pub fn spec_text_for_display(text: &str) -> String {
    let Ok(document) = DeTable::parse(text) else {
        return redact_lines(text);
    };
    let mut spans = Vec::new();
    for (key, value) in document.get_ref() {
        if key.get_ref() != "env" {
            continue;
        }
        if let DeValue::Table(env) = value.get_ref() {
            for (name, value) in env {
                if is_secret_name(name.get_ref()) {
                    spans.push(value.span());
                }
            }
        }
    }
    spans.sort_by_key(|span| std::cmp::Reverse(span.start));
    let mut shown = text.to_owned();
    for span in spans {
        if span.end <= shown.len()
            && shown.is_char_boundary(span.start)
            && shown.is_char_boundary(span.end)
        {
            shown.replace_range(span, &format!("\"{REDACTED}\""));
        }
    }
    shown
}

fn redact_lines(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let cut = line.find(['=', ':']).filter(|_| {
            line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(is_secret_name)
        });
        match cut {
            Some(at) => {
                shown.push_str(&line[..=at]);
                shown.push_str(&format!(" \"{REDACTED}\""));
                if line.ends_with('\n') {
                    shown.push('\n');
                }
            }
            None => shown.push_str(line),
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_look_secret() {
        for name in [
            "DB_PASSWORD",
            "github_token",
            "AWS_SECRET_ACCESS_KEY",
            "API_KEY",
            "passwd",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["PATH", "LOG_LEVEL", "PORT"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn every_way_of_writing_env_is_redacted() {
        let text = "command = \"x\"\nenv = { API_TOKEN = \"t0k3n\", LEVEL = \"debug\" }\n";
        let shown = spec_text_for_display(text);
        assert_eq!(
            shown,
            "command = \"x\"\nenv = { API_TOKEN = \"<redacted>\", LEVEL = \"debug\" }\n"
        );
        let text = "command = \"x\"\n[env]\nDB_PASSWORD = '''hunter2'''\nA = \"1\"\n";
        let shown = spec_text_for_display(text);
        assert!(
            !shown.contains("hunter2") && shown.contains("A = \"1\""),
            "{shown}"
        );
        let text = "command = \"x\"\nenv.SECRET = \"s3cr3t\"\n";
        let shown = spec_text_for_display(text);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let broken = spec_text_for_display("cmd = [\nenv = { API_KEY = \"x\" \nA = 1\n");
        assert_eq!(broken, "cmd = [\nenv = \"<redacted>\"\nA = 1\n");
    }
}
