//! What a namespace-mode demo created outside its processes (network namespaces, the host
//! link, the folder holding the proxy binary for UID 1337), one line per thing in
//! DIR/created. A line is written *before* the thing is made, so stopping (now, or in the next
//! run after this one was killed) removes exactly what exists of it. Only names the demo
//! owns (its prefixes) are ever removed, whatever the file says.

use anyhow::Context;
use std::path::{Path, PathBuf};

use super::netns;

/// The prefix of the temporary folder holding the sidecar's binary.
pub const BIN_DIR_PREFIX: &str = "lateen-demo-bin-";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Netns(String),
    Link(String),
    Dir(PathBuf),
}

pub struct Record {
    path: PathBuf,
    items: Vec<Item>,
}

impl Record {
    /// The record in `dir`, with whatever an earlier run left in it.
    pub fn open(dir: &Path) -> Record {
        let path = dir.join("created");
        let items = std::fs::read_to_string(&path)
            .map(|text| text.lines().filter_map(parse).collect())
            .unwrap_or_default();
        Record { path, items }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Notes `item` as about to be created.
    pub fn add(&mut self, item: Item) -> anyhow::Result<()> {
        self.items.push(item);
        self.save()
    }

    fn save(&self) -> anyhow::Result<()> {
        let text: String = self
            .items
            .iter()
            .map(|item| format!("{}\n", format(item)))
            .collect();
        std::fs::write(&self.path, text).with_context(|| format!("writing {}", self.path.display()))
    }

    /// Removes everything recorded, newest first; what cannot be removed is reported and
    /// kept in the record for the next run.
    pub fn undo(&mut self) {
        let mut kept = Vec::new();
        while let Some(item) = self.items.pop() {
            if let Err(err) = remove(&item) {
                eprintln!("warning: {err:#}");
                kept.push(item);
            }
        }
        kept.reverse();
        self.items = kept;
        if self.items.is_empty() {
            let _ = std::fs::remove_file(&self.path);
        } else if let Err(err) = self.save() {
            eprintln!("warning: {err:#}");
        }
    }
}

fn format(item: &Item) -> String {
    match item {
        Item::Netns(name) => format!("netns {name}"),
        Item::Link(name) => format!("link {name}"),
        Item::Dir(path) => format!("dir {}", path.display()),
    }
}

fn parse(line: &str) -> Option<Item> {
    match line.split_once(' ')? {
        ("netns", name) => Some(Item::Netns(name.to_string())),
        ("link", name) => Some(Item::Link(name.to_string())),
        ("dir", path) => Some(Item::Dir(PathBuf::from(path))),
        _ => None,
    }
}

fn remove(item: &Item) -> anyhow::Result<()> {
    match item {
        Item::Netns(name) => netns::remove(name),
        Item::Link(name) => {
            anyhow::ensure!(
                name.starts_with("lateen-demo"),
                "refusing to remove link {name:?}: not one of the demo's"
            );
            // Usually gone already: deleting the hub namespace deletes its veth peer.
            if netns::link_exists(name) {
                netns::ip(&["link", "del", name])?;
            }
            Ok(())
        }
        Item::Dir(path) => {
            let ours = path.parent() == Some(std::env::temp_dir().as_path())
                && path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with(BIN_DIR_PREFIX));
            anyhow::ensure!(
                ours,
                "refusing to remove {}: not one of the demo's folders",
                path.display()
            );
            if path.exists() {
                std::fs::remove_dir_all(path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        for item in [
            Item::Netns("lateen-demo-hub".into()),
            Item::Link("lateen-demo0".into()),
            Item::Dir(PathBuf::from("/tmp/lateen-demo-bin-1")),
        ] {
            assert_eq!(parse(&format(&item)), Some(item));
        }
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn foreign_names_are_never_removed() {
        assert!(remove(&Item::Netns("production".into())).is_err());
        assert!(remove(&Item::Link("eth0".into())).is_err());
        assert!(remove(&Item::Dir(PathBuf::from("/home"))).is_err());
    }
}
