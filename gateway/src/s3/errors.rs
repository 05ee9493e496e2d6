//! Failures of the cluster as S3 errors. The client library keeps the gRPC code of a failed
//! metadata call; the caller says which S3 code a missing path means where it is called (a
//! missing bucket and a missing key are different errors), the rest is mapped here once.

use s3s::{S3Error, S3ErrorCode};
use tonic::Code;

use bigfs_client::client::MetaError;

/// `error` as S3 answers it; `not_found` is the code for a path that does not exist.
pub fn s3(error: anyhow::Error, not_found: S3ErrorCode) -> S3Error {
    let message = format!("{error:#}");
    let code = match MetaError::find(&error).map(|e| e.code) {
        Some(Code::NotFound) => not_found,
        Some(Code::InvalidArgument | Code::OutOfRange) => S3ErrorCode::InvalidArgument,
        // A file where a directory must be, or the reverse: a key and a prefix that BigFS
        // cannot hold both of (`a` and `a/b`).
        Some(Code::FailedPrecondition | Code::AlreadyExists) => S3ErrorCode::InvalidArgument,
        Some(Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted) => {
            S3ErrorCode::ServiceUnavailable
        }
        _ => S3ErrorCode::InternalError,
    };
    if matches!(
        code,
        S3ErrorCode::InternalError | S3ErrorCode::ServiceUnavailable
    ) {
        tracing::warn!("s3: {message}");
    }
    S3Error::with_message(code, message)
}

/// The gRPC code of a metadata failure in `error`, if it has one.
pub fn code(error: &anyhow::Error) -> Option<Code> {
    MetaError::find(error).map(|e| e.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(code: Code) -> anyhow::Error {
        MetaError {
            code,
            message: "m".into(),
            hint: None,
        }
        .into()
    }

    #[test]
    fn codes_map_to_s3_errors() {
        assert_eq!(
            s3(meta(Code::NotFound), S3ErrorCode::NoSuchKey).code(),
            &S3ErrorCode::NoSuchKey
        );
        assert_eq!(
            s3(meta(Code::Unavailable), S3ErrorCode::NoSuchKey).code(),
            &S3ErrorCode::ServiceUnavailable
        );
        assert_eq!(
            s3(meta(Code::FailedPrecondition), S3ErrorCode::NoSuchKey).code(),
            &S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            s3(anyhow::anyhow!("node down"), S3ErrorCode::NoSuchKey).code(),
            &S3ErrorCode::InternalError
        );
    }
}
