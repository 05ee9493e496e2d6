//! The S3 API: a second front door, on a listener of its own, over the same client library.
//!
//! s3s parses and routes requests, checks their signatures ([`keys`]) and writes the XML; the
//! [`Gateway`] answers each operation in a few lines over plain cores: [`names`] (buckets and
//! keys as paths), [`listing`] (ListObjects in key order over directory listings), [`etag`]
//! (ETags and conditional headers) and [`errors`] (cluster failures as S3 errors). Buckets,
//! objects and multipart uploads are in [`buckets`], [`objects`] and [`multipart`]; anything
//! else answers 501 NotImplemented (s3s's default), never a success it did not earn, and so do
//! the parts of a supported request BigFS cannot honour ([`unsupported`]). Conditional writes
//! and deletes are checked in one step with the change ([`conditions`]). [`encryption`]
//! encrypts what a request asks to be (SSE-C, SSE-S3, SSE-KMS) as it streams past, under the
//! bucket's [`default_encryption`] when the request asks for none.
//! A bucket's configurations are kept as its directory's extended attributes
//! ([`bucket_config`], [`bucket_settings`]): lifecycle rules ([`lifecycle`], carried out by
//! [`expiry`]), CORS rules ([`cors`]) and ACLs ([`acl`]; who a request is and what an unsigned
//! one may read: [`access`]).

pub mod access;
pub mod acl;
pub mod attributes;
pub mod bucket_config;
pub mod bucket_settings;
pub mod buckets;
pub mod conditions;
pub mod cors;
pub mod cors_layer;
pub mod default_encryption;
pub mod encryption;
pub mod errors;
pub mod etag;
pub mod expiry;
pub mod headers;
pub mod keys;
pub mod lifecycle;
pub mod listing;
pub mod multipart;
pub mod names;
pub mod objects;
pub mod presigned;
mod service;
pub mod tagging;
pub mod unsupported;

use axum::error_handling::HandleError;
use axum::http::StatusCode;
use axum::Router;
use s3s::service::S3ServiceBuilder;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use bigfs_client::Client;

/// The S3 operations over one cluster.
#[derive(Clone)]
pub struct Gateway {
    client: Client,
    /// Chunks in flight per transfer.
    parallel: usize,
    /// Object bodies moving at once; more wait their turn. Each holds about three times
    /// `parallel` chunks, so this bounds the gateway's memory whatever clients send at once
    /// (aws-cli alone moves ten parts or ranges at a time).
    transfers: Arc<Semaphore>,
    /// The keys of SSE-S3 and SSE-KMS; empty where they are not enabled.
    keyring: Arc<crate::crypto::Keyring>,
    /// The key pairs' users, as [`router`] is given them.
    keys: keys::Keys,
}

impl Gateway {
    pub fn new(client: Client, parallel: usize, transfers: usize) -> Self {
        Self {
            client,
            parallel,
            transfers: Arc::new(Semaphore::new(transfers)),
            keyring: Arc::default(),
            keys: keys::Keys::default(),
        }
    }

    /// This gateway with the keys of SSE-S3 and SSE-KMS.
    pub fn with_keyring(self, keyring: crate::crypto::Keyring) -> Self {
        Self {
            keyring: Arc::new(keyring),
            ..self
        }
    }

    /// A turn to move one object body, waited for.
    async fn transfer_turn(&self) -> s3s::S3Result<OwnedSemaphorePermit> {
        self.transfers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| s3s::s3_error!(ServiceUnavailable, "the gateway is stopping"))
    }
}

/// The S3 front door: every request goes to s3s, which checks it against `auth`, after
/// [`presigned`] has refused presigned URLs whose validity S3 would not accept; CORS
/// preflights are answered before, and CORS headers added after ([`cors_layer`]).
pub fn router(mut gateway: Gateway, auth: keys::Keys) -> Router {
    gateway.keys = auth.clone();
    let mut builder = S3ServiceBuilder::new(gateway.clone());
    builder.set_auth(auth);
    builder.set_access(access::Access(gateway.clone()));
    let service = HandleError::new(builder.build(), |e: s3s::HttpError| async move {
        tracing::warn!("s3: {e:?}");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    });
    Router::new()
        .fallback_service(service)
        .layer(axum::middleware::from_fn(attributes::unquote_etag))
        .layer(axum::middleware::from_fn(presigned::check))
        .layer(axum::middleware::from_fn_with_state(
            gateway,
            cors_layer::layer,
        ))
}
