//! The soak test's parts: the mesh it writes for lateend ([`mesh`]) and the traffic it sends
//! through the client sidecar ([`load`]).

pub mod load;
pub mod mesh;
