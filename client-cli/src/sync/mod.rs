//! `bigfs sync`: make a destination tree equal a source tree, one side local and the other
//! in the cluster, moving only what differs.
pub mod plan;
