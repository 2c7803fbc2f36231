//! A line diff in unified style, for `profile diff`.

/// One line of an edit script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Same(usize, usize),
    Removed(usize),
    Added(usize),
}

/// How the diff is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Lines of unchanged context around each change.
    pub context: usize,
    /// ANSI colours (red removed, green added, cyan hunk headers).
    pub color: bool,
}

/// A unified diff of `old` and `new`; empty when they are equal.
pub fn unified(
    old_name: &str,
    old: &str,
    new_name: &str,
    new: &str,
    options: DiffOptions,
) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let edits = edit_script(&old_lines, &new_lines);
    if edits.iter().all(|edit| matches!(edit, Edit::Same(..))) {
        return String::new();
    }
    let paint = |code: &str, text: String| {
        if options.color {
            format!("\x1b[{code}m{text}\x1b[0m\n")
        } else {
            format!("{text}\n")
        }
    };
    let mut out = String::new();
    out.push_str(&paint("1", format!("--- {old_name}")));
    out.push_str(&paint("1", format!("+++ {new_name}")));
    for (start, end) in hunks(&edits, options.context) {
        let hunk = &edits[start..end];
        let (old_start, new_start) = first_positions(&edits, start);
        let old_count = hunk.iter().filter(|e| !matches!(e, Edit::Added(_))).count();
        let new_count = hunk
            .iter()
            .filter(|e| !matches!(e, Edit::Removed(_)))
            .count();
        out.push_str(&paint(
            "36",
            format!(
                "@@ -{},{} +{},{} @@",
                old_start + usize::from(old_count > 0),
                old_count,
                new_start + usize::from(new_count > 0),
                new_count
            ),
        ));
        for edit in hunk {
            match *edit {
                Edit::Same(i, _) => out.push_str(&format!(" {}\n", old_lines[i])),
                Edit::Removed(i) => out.push_str(&paint("31", format!("-{}", old_lines[i]))),
                Edit::Added(j) => out.push_str(&paint("32", format!("+{}", new_lines[j]))),
            }
        }
    }
    out
}

/// Lines of old and new before edit `index` (0-based counts, so the 1-based start of a hunk).
fn first_positions(edits: &[Edit], index: usize) -> (usize, usize) {
    edits[..index]
        .iter()
        .fold((0, 0), |(old, new), edit| match edit {
            Edit::Same(..) => (old + 1, new + 1),
            Edit::Removed(_) => (old + 1, new),
            Edit::Added(_) => (old, new + 1),
        })
}

/// Ranges of the edit script that hold changes, widened by `context` and joined when they touch.
fn hunks(edits: &[Edit], context: usize) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (index, edit) in edits.iter().enumerate() {
        if matches!(edit, Edit::Same(..)) {
            continue;
        }
        let start = index.saturating_sub(context);
        let end = (index + 1 + context).min(edits.len());
        match ranges.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

/// Longest-common-subsequence edit script; profile documents are a few hundred lines.
fn edit_script(old: &[&str], new: &[&str]) -> Vec<Edit> {
    let (n, m) = (old.len(), new.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if old[i] == new[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut edits = Vec::with_capacity(n.max(m));
    while i < n && j < m {
        if old[i] == new[j] {
            edits.push(Edit::Same(i, j));
            i += 1;
            j += 1;
        } else if lcs[at(i + 1, j)] >= lcs[at(i, j + 1)] {
            edits.push(Edit::Removed(i));
            i += 1;
        } else {
            edits.push(Edit::Added(j));
            j += 1;
        }
    }
    edits.extend((i..n).map(Edit::Removed));
    edits.extend((j..m).map(Edit::Added));
    edits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_changes_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\n";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\n";
        let diff = unified(
            "x",
            old,
            "y",
            new,
            DiffOptions {
                context: 1,
                color: false,
            },
        );
        assert_eq!(
            diff,
            "--- x\n+++ y\n@@ -3,3 +3,3 @@\n c\n-d\n+D\n e\n@@ -7,1 +7,2 @@\n g\n+h\n"
        );
        assert!(unified("x", old, "y", old, DiffOptions::default()).is_empty());
    }
}
