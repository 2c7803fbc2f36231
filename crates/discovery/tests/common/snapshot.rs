//! Reading translated resources out of a snapshot, shared by the translation tests.

use lateen_xds::prost::Message;
use lateen_xds::{Snapshot, types};

/// The resource `name` of `type_url`, decoded; panics naming what the snapshot has instead.
pub fn decode<M: Message + Default>(s: &Snapshot, type_url: &str, name: &str) -> M {
    let r = s.get(type_url, name).unwrap_or_else(|| {
        panic!(
            "no {} {name}; have {:?}",
            types::short_name(type_url),
            names(s, type_url)
        )
    });
    M::decode(r.resource.value.as_slice()).unwrap_or_else(|e| panic!("decode {name}: {e}"))
}

/// The names of the snapshot's resources of `type_url`.
pub fn names(s: &Snapshot, type_url: &str) -> Vec<String> {
    s.resources(type_url).map(|(n, _)| n.clone()).collect()
}
