//! `bigfs-gateway`: HTTP front doors to a BigFS cluster, built on the client library.
//!
//! The gateway is a client like `bigfs`: it asks the metadata server where chunks live and
//! moves their bytes to and from the storage nodes itself, so the metadata server stays out of
//! the data path. It keeps no state beyond the uploads in flight, so more gateways serve more
//! users. Each front door is an axum router on a listener of its own ([`server`]): the web
//! console ([`console`]) and the S3 API ([`s3`]).
//!
//! [`observe`] counts every door's requests for `/metrics` and keeps `/readyz` saying whether
//! the metadata server answers. [`crypto`] is the cryptography of S3 server-side encryption.
//!
//! The console's handlers are thin: they parse the request, call a plain core and map its
//! result. The cores are [`remote_path`] (paths from query strings), [`paging`] (a directory's
//! listing a page at a time), [`views`] (what the JSON API answers), [`error`] (failures as HTTP
//! statuses and `{"error": ...}`) and [`transfer`] (uploads and downloads as streams).

pub mod console;
pub mod crypto;
pub mod error;
pub mod observe;
pub mod paging;
pub mod remote_path;
pub mod s3;
pub mod server;
pub mod transfer;
pub mod views;
