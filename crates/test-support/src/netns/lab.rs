//! A network lab for one test: namespaces named after the test and its process, veth pairs
//! between them, the processes started inside with a log file each in the lab's folder, and
//! on drop everything removed in the right order (processes, then namespaces, which takes
//! their links with them, then the folder).

use std::path::Path;

use super::{Netns, must};
use crate::process::Children;

/// One end of a veth pair: the namespace it goes in and its addresses in CIDR form (IPv6
/// ones are added without duplicate address detection, so they work at once).
#[derive(Clone, Copy, Debug)]
pub struct End<'a> {
    pub netns: &'a str,
    pub addresses: &'a [&'a str],
}

/// Namespaces, links and processes of one test. Field order is drop order.
pub struct Lab {
    children: Children,
    namespaces: Vec<Netns>,
    dir: tempfile::TempDir,
    tag: String,
    veths: u32,
}

impl Lab {
    /// An empty lab whose namespaces are named `lateen-TAG-ROLE-PID`; its folder is readable
    /// by every user (processes run as the proxy's or an app's UID read files there).
    pub fn new(tag: &str) -> Lab {
        let dir = tempfile::tempdir().expect("lab folder");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("make the lab folder readable");
        Lab {
            children: Children::default(),
            namespaces: Vec::new(),
            dir,
            tag: tag.to_string(),
            veths: 0,
        }
    }

    /// The lab's folder: logs (`NAME.log`) and whatever the test writes.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates the namespace for `role` (loopback up) and returns its name.
    pub fn namespace(&mut self, role: &str) -> String {
        let netns = Netns::create(&format!(
            "lateen-{}-{role}-{}",
            self.tag,
            std::process::id()
        ));
        let name = netns.name().to_string();
        self.namespaces.push(netns);
        name
    }

    /// A veth pair from `a` to `b`, both ends up with their addresses: the two device names
    /// (at most 15 bytes, as Linux requires, and unique per test process).
    pub fn veth(&mut self, a: End, b: End) -> (String, String) {
        let id = std::process::id() % 100_000;
        let n = self.veths;
        self.veths += 1;
        let (dev_a, dev_b) = (format!("v{n}a{id}"), format!("v{n}b{id}"));
        must(
            None,
            &[
                "ip", "link", "add", &dev_a, "netns", a.netns, "type", "veth", "peer", "name",
                &dev_b, "netns", b.netns,
            ],
        );
        for (end, dev) in [(a, &dev_a), (b, &dev_b)] {
            for address in end.addresses {
                if address.contains(':') {
                    must(
                        Some(end.netns),
                        &["ip", "-6", "addr", "add", address, "dev", dev, "nodad"],
                    );
                } else {
                    must(Some(end.netns), &["ip", "addr", "add", address, "dev", dev]);
                }
            }
            must(Some(end.netns), &["ip", "link", "set", dev, "up"]);
        }
        (dev_a, dev_b)
    }

    /// Starts `args` in namespace `netns` with `env` added, stdout and stderr in
    /// `NAME.log`; the process is killed when the lab drops. Its index, for [`Lab::kill`].
    pub fn spawn(&mut self, netns: &str, name: &str, args: &[&str], env: &[(&str, &str)]) -> usize {
        let log = self.dir.path().join(format!("{name}.log"));
        let netns = self
            .namespaces
            .iter()
            .find(|candidate| candidate.name() == netns)
            .unwrap_or_else(|| panic!("{netns} is not a namespace of this lab"));
        let child = netns
            .spawn(args, &log, |command| {
                command.envs(env.iter().copied());
            })
            .unwrap_or_else(|err| panic!("start {name} ({args:?}) in {}: {err}", netns.name()));
        self.children.push(child)
    }

    /// [`Lab::spawn`] as the proxy's user, as Istio runs its sidecar: UID and GID 1337 and no
    /// other groups, whose own traffic the capture rules let through.
    pub fn spawn_as_proxy(
        &mut self,
        netns: &str,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> usize {
        let mut as_proxy = vec!["setpriv", "--reuid=1337", "--regid=1337", "--clear-groups"];
        as_proxy.extend_from_slice(args);
        self.spawn(netns, name, &as_proxy, env)
    }

    /// Kills the process at `index` now (to replace it, say).
    pub fn kill(&mut self, index: usize) {
        self.children.kill(index);
    }

    /// What `NAME.log` holds so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Every log of the lab, each under its name, for a failure message.
    pub fn logs(&self) -> String {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|entry| {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        name.strip_suffix(".log").map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .map(|name| format!("--- {name}.log\n{}\n", self.log(name)))
            .collect()
    }
}
