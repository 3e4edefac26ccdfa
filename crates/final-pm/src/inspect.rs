//! `inspect`: every field of the selected apps and processes, as an indented
//! listing of the protocol's own field names and JSON values.
//!
//! ```text
//! web = {
//!   name: "web"
//!   args: [
//!     "a1"
//!   ]
//!   env: { ... }
//!   revision: 3
//! }
//! running:web/0 = {
//!   id: 4
//!   ...
//! }
//! ```

use serde_json::Value;

use crate::plan::Snapshot;
use crate::selector::{Mode, Selector};

/// Renders every selected app (table order), then every selected process.
/// `env` is shown only when `verbose`: it is long and may hold secrets.
pub(crate) fn render(
    snapshot: &Snapshot,
    selectors: &[Selector],
    verbose: bool,
    colour: bool,
) -> String {
    let mut out = String::new();
    for app in snapshot.selected_apps(selectors, verbose) {
        let value = serde_json::to_value(app).unwrap_or(Value::Null);
        block(&mut out, &app.config.name, &value, verbose, colour);
    }
    for process in snapshot.selected_processes(selectors, Mode::Exact, verbose) {
        let label = format!(
            "{}:{}/{}",
            process.generation, process.app_name, process.number
        );
        let value = serde_json::to_value(process).unwrap_or(Value::Null);
        block(&mut out, &label, &value, verbose, colour);
    }
    out
}

fn block(out: &mut String, label: &str, value: &Value, verbose: bool, colour: bool) {
    let painter = Painter { colour, verbose };
    out.push_str(label);
    out.push_str(" = ");
    painter.value(out, value, 0);
    out.push('\n');
}

struct Painter {
    colour: bool,
    verbose: bool,
}

impl Painter {
    fn paint(&self, out: &mut String, code: &str, text: &str) {
        if self.colour {
            out.push_str(code);
            out.push_str(text);
            out.push_str("\x1b[0m");
        } else {
            out.push_str(text);
        }
    }

    fn value(&self, out: &mut String, value: &Value, indent: usize) {
        let pad = "  ".repeat(indent + 1);
        match value {
            Value::Object(map) if map.is_empty() => out.push_str("{}"),
            Value::Array(items) if items.is_empty() => out.push_str("[]"),
            Value::Object(map) => {
                out.push_str("{\n");
                for (key, item) in map {
                    out.push_str(&pad);
                    self.paint(out, "\x1b[33m", key);
                    out.push_str(": ");
                    if key == "env" && !self.verbose && item.is_object() {
                        self.paint(out, "\x1b[90m", "{ ... }");
                    } else {
                        self.value(out, item, indent + 1);
                    }
                    out.push('\n');
                }
                out.push_str(&"  ".repeat(indent));
                out.push('}');
            }
            Value::Array(items) => {
                out.push_str("[\n");
                for item in items {
                    out.push_str(&pad);
                    self.value(out, item, indent + 1);
                    out.push('\n');
                }
                out.push_str(&"  ".repeat(indent));
                out.push(']');
            }
            scalar => self.paint(out, "\x1b[34m", &scalar.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use final_pm_protocol::{AppConfig, AppInfo};

    use super::*;

    #[test]
    fn apps_are_listed_with_env_hidden_unless_verbose() {
        let mut config = AppConfig::new("web", "/srv", "/srv/web.sh");
        config.args = vec!["a1".into()];
        config.env.insert("SECRET".into(), "x".into());
        let snapshot = Snapshot {
            applications: vec![AppInfo {
                revision: 3,
                config,
            }],
            processes: vec![],
        };
        let selectors = [Selector::parse("web").unwrap()];
        let text = render(&snapshot, &selectors, false, false);
        assert!(text.starts_with("web = {\n"), "{text}");
        assert!(text.contains("\n  args: [\n    \"a1\"\n  ]\n"), "{text}");
        assert!(text.contains("\n  env: { ... }\n"), "{text}");
        assert!(text.contains("\n  revision: 3\n"), "{text}");
        assert!(text.ends_with("}\n"), "{text}");
        let text = render(&snapshot, &selectors, true, false);
        assert!(
            text.contains("\"SECRET\"") || text.contains("SECRET: \"x\""),
            "{text}"
        );
        let none = render(
            &snapshot,
            &[Selector::parse("web/0").unwrap()],
            false,
            false,
        );
        assert_eq!(none, "");
    }
}
