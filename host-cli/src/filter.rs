//! `--exclude` and `--include`: which names a push, pull or sync touches.
//!
//! Patterns are globs over server names (relative, `/`-separated): `*` is
//! any run of characters within one part of a name, `**` any run across
//! parts, `?` one character other than `/`. A pattern without `/` is
//! matched against every part of a name, so `*.tmp` skips temporary files at
//! any depth and `node_modules` skips that directory and all beneath it. A
//! pattern with `/` (or starting with `/`, to anchor a single part) is
//! matched from the start of the name against the name and each of its
//! parent directories (`build/out` skips `build/out/...`, `/cache` skips
//! `cache/...` but not `app/cache`).
//!
//! A name is skipped when it matches an `--exclude` and no `--include`; with
//! `--include` alone, only names that match one are kept.

use clap::Args;

/// `--exclude` and `--include`, shared by `push`, `pull` and `sync`.
#[derive(Clone, Debug, Default, Args)]
pub struct FilterArgs {
    /// Leave out names matching GLOB (`*`, `**`, `?`; without `/` it matches any
    /// part of a name, e.g. `*.tmp` or `node_modules`). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Keep names matching GLOB even when an --exclude matches them; given
    /// without --exclude, keep only names matching it. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
}

/// The compiled choice of names.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    exclude: Vec<String>,
    include: Vec<String>,
}

impl Filter {
    /// The filter the command line asked for.
    pub fn from_args(args: &FilterArgs) -> Filter {
        let clean = |patterns: &[String]| {
            patterns
                .iter()
                .map(|p| p.trim_end_matches('/').to_owned())
                .filter(|p| !p.is_empty() && p != "/")
                .collect()
        };
        Filter {
            exclude: clean(&args.exclude),
            include: clean(&args.include),
        }
    }

    /// True when `name` (a server name) is to be pushed, pulled or synced.
    pub fn keeps(&self, name: &str) -> bool {
        let matches_any = |patterns: &[String]| patterns.iter().any(|p| matches(p, name));
        let excluded = if self.exclude.is_empty() {
            !self.include.is_empty()
        } else {
            matches_any(&self.exclude)
        };
        !excluded || matches_any(&self.include)
    }
}

/// True when `pattern` matches `name` by the rules in the module doc.
fn matches(pattern: &str, name: &str) -> bool {
    let anchored = pattern.starts_with('/');
    let pattern: Vec<char> = pattern.trim_start_matches('/').chars().collect();
    if !anchored && !pattern.contains(&'/') {
        return name
            .split('/')
            .any(|part| glob(&pattern, &part.chars().collect::<Vec<_>>()));
    }
    let name: Vec<char> = name.chars().collect();
    // The name itself and each parent directory of it.
    (0..=name.len())
        .filter(|&end| end == name.len() || name[end] == '/')
        .any(|end| glob(&pattern, &name[..end]))
}

/// Glob matching with `*` (not across `/`), `**` (across `/`) and `?`.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match pattern {
        [] => text.is_empty(),
        ['*', '*', rest @ ..] => {
            // `**/` also matches no directory at all.
            let rest_after_slash = rest.strip_prefix(&['/']).unwrap_or(rest);
            (0..=text.len()).any(|skip| glob(rest, &text[skip..])) || glob(rest_after_slash, text)
        }
        ['*', rest @ ..] => (0..=text.len())
            .take_while(|&skip| skip == 0 || text[skip - 1] != '/')
            .any(|skip| glob(rest, &text[skip..])),
        ['?', rest @ ..] => match text {
            [c, tail @ ..] if *c != '/' => glob(rest, tail),
            _ => false,
        },
        [p, rest @ ..] => match text {
            [c, tail @ ..] if c == p => glob(rest, tail),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(exclude: &[&str], include: &[&str]) -> Filter {
        Filter::from_args(&FilterArgs {
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            include: include.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn a_pattern_without_slash_matches_any_part_of_a_name() {
        assert!(matches("*.tmp", "a.tmp"));
        assert!(matches("*.tmp", "deep/down/a.tmp"));
        assert!(!matches("*.tmp", "a.tmp.txt"));
        assert!(matches("node_modules", "web/node_modules/x/y.js"));
        assert!(matches("?.txt", "dir/a.txt"));
        assert!(!matches("?.txt", "dir/ab.txt"));
    }

    #[test]
    fn a_pattern_with_slash_matches_from_the_start_the_name_or_a_parent() {
        assert!(matches("build/out", "build/out/bin/app"));
        assert!(!matches("build/out", "src/build/out"));
        assert!(matches("photos/*.jpg", "photos/a.jpg"));
        assert!(!matches("photos/*.jpg", "photos/2026/a.jpg"));
        assert!(matches("photos/**/*.jpg", "photos/2026/a.jpg"));
        assert!(matches("photos/**/*.jpg", "photos/a.jpg"));
        assert!(matches("/cache", "cache/x"));
        assert!(!matches("/cache", "app/cache"));
    }

    #[test]
    fn exclude_skips_include_overrides_and_include_alone_selects() {
        let f = filter(&["*.log"], &["keep.log"]);
        assert!(!f.keeps("a/debug.log"));
        assert!(f.keeps("a/keep.log"));
        assert!(f.keeps("a/notes.txt"));
        let only = filter(&[], &["*.jpg"]);
        assert!(only.keeps("photos/a.jpg"));
        assert!(!only.keeps("notes.txt"));
        assert!(Filter::default().keeps("anything"));
    }
}
