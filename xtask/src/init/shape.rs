//! How a line that holds a version can be edited: a YAML value (in a
//! YAML file or a Markdown file's fenced block), an env `KEY=` value, or a
//! literal template for a setting-shaped line; anything else is left alone
//! with the reason.

use super::survey::Occurrence;
use crate::{
    config::{EditRule, VERSION_SLOT},
    edit::{env, yaml},
};

/// What a file's lines can be read as.
pub struct Shape {
    yaml_file: bool,
    markdown: bool,
    yaml: Vec<yaml::Entry>,
    env: Vec<env::Assignment>,
    /// Byte ranges inside Markdown code fences.
    fences: Vec<(usize, usize)>,
}

impl Shape {
    pub fn of(rel: &str, text: &str) -> Shape {
        let yaml_file = rel.ends_with(".yaml") || rel.ends_with(".yml");
        let markdown = rel.ends_with(".md") || rel.ends_with(".markdown");
        let mut fences = Vec::new();
        if markdown {
            let (mut offset, mut open) = (0, None);
            for line in text.split_inclusive('\n') {
                let fence =
                    line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~");
                match (fence, open) {
                    (true, None) => open = Some(offset + line.len()),
                    (true, Some(from)) => {
                        fences.push((from, offset));
                        open = None;
                    }
                    _ => {}
                }
                offset += line.len();
            }
        }
        Shape {
            yaml_file,
            markdown,
            yaml: if yaml_file || markdown {
                yaml::entries(text)
            } else {
                Vec::new()
            },
            env: if markdown {
                Vec::new()
            } else {
                env::assignments(text)
            },
            fences,
        }
    }

    /// The edit that fits the line of `o`, or why there is none.
    pub fn propose(
        &self,
        text: &str,
        o: &Occurrence,
        all: &[Occurrence],
    ) -> Result<EditRule, &'static str> {
        let line_start = text[..o.start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[o.start..]
            .find('\n')
            .map_or(text.len(), |i| o.start + i);
        let line = text[line_start..line_end].trim_end_matches('\r');
        if all
            .iter()
            .filter(|p| (line_start..line_end).contains(&p.start))
            .count()
            > 1
        {
            return Err("more than one version on the line");
        }
        let body = line.trim_start();
        if body.starts_with('#') || body.starts_with("//") {
            return Err("in a comment or a heading");
        }
        let in_fence = self.fences.iter().any(|(a, b)| (*a..*b).contains(&o.start));
        if self.yaml_file || in_fence {
            if let Some(e) = self
                .yaml
                .iter()
                .find(|e| e.start <= o.start && o.end <= e.end)
            {
                if e.start == o.start && e.end == o.end {
                    return Ok(rule(|r| r.yaml = Some(e.path.clone())));
                }
                return Err("part of a longer YAML value");
            }
            return Err(if in_fence {
                "an example in a code block"
            } else {
                "not a YAML value"
            });
        }
        if let Some(a) = self
            .env
            .iter()
            .find(|a| a.start == o.start && a.end == o.end)
        {
            return Ok(rule(|r| r.env = Some(a.key.clone())));
        }
        let template = template_for(line, o.start - line_start, o.end - line_start)
            .ok_or("not a setting: prose, an example or part of a longer value")?;
        if self.markdown && !template.contains(':') {
            return Err("not a setting: prose, an example or part of a longer value");
        }
        Ok(rule(|r| r.find = Some(template)))
    }
}

/// An edit of one match; `survey` sets the count it really finds.
fn rule(set: impl FnOnce(&mut EditRule)) -> EditRule {
    let mut r = EditRule {
        count: 1,
        ..EditRule::default()
    };
    set(&mut r);
    r
}

/// A line-start template for a version that is the whole value of a
/// setting: after `key:`, `key =`, a bold Markdown label or a call's
/// argument, optionally quoted and `v`-prefixed, with nothing but a
/// comment after it. `None` for prose, examples and longer values.
fn template_for(line: &str, start: usize, end: usize) -> Option<String> {
    let indent = line.len() - line.trim_start().len();
    let prefix = line.get(indent..start)?;
    let mut core = prefix.strip_suffix('v').unwrap_or(prefix);
    let quote = core
        .chars()
        .next_back()
        .filter(|c| matches!(c, '"' | '\'' | '`'));
    if let Some(q) = quote {
        core = &core[..core.len() - q.len_utf8()];
    }
    let suffix = &line[end..];
    let after = match quote {
        Some(q) => {
            let closing: String = suffix
                .strip_prefix(q)?
                .chars()
                .take_while(|c| ")]};,".contains(*c))
                .collect();
            format!("{q}{closing}")
        }
        None if suffix.is_empty() || suffix.starts_with(char::is_whitespace) => String::new(),
        None => return None,
    };
    let rest = suffix[after.len()..].trim();
    let commented = ["#", "//", "<!--"].iter().any(|c| rest.starts_with(c));
    let key = core.trim_end().trim_end_matches('*').trim_end();
    let keyed = key.len() > 1 && key.ends_with([':', '=', ',', '(']);
    if !(rest.is_empty() || commented) || !keyed || prefix.contains(VERSION_SLOT) {
        return None;
    }
    Some(format!("{prefix}{VERSION_SLOT}{after}"))
}
