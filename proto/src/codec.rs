//! The gRPC codec of every BigFS service: prost's, with buffers sized so that a chunk is never
//! copied by a buffer growing under it.
//!
//! With tonic's defaults a 1 MiB chunk was copied three times per hop instead of once
//! (profiled in docs/BENCHMARKS.md): the encode buffer starts at 8 KiB and doubled, copying
//! the encoded chunk, when the fields after it were written; and the decode buffer, which
//! holds the first HTTP/2 frame when the message header is read, then reserves room for the
//! whole message on top of it, copying that frame.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder};

use crate::limits::DEFAULT_CHUNK_SIZE;

/// Initial size of a decode buffer: the first frame of a default-size chunk's message plus the
/// whole message reserved after it (see the module's comment), plus room for the other fields.
const DECODE_BUFFER: usize = 2 * DEFAULT_CHUNK_SIZE as usize + 64 * 1024;

/// tonic's default (not exported), kept for the decoder.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// Named by `proto/build.rs` as the codec of every generated client and server.
#[derive(Debug, Clone)]
pub struct BigfsCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BigfsCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for BigfsCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = SizedEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        SizedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(DECODE_BUFFER, YIELD_THRESHOLD))
    }
}

/// Prost's encoding into a buffer first grown to the message's encoded length, once.
#[derive(Debug, Clone)]
pub struct SizedEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for SizedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        // tonic's defaults: reserving the exact encoded length makes a bigger initial buffer
        // unnecessary.
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_REPLICATION;
    use crate::pb::{NodeAddr, PutChunkRequest};

    #[test]
    fn the_biggest_default_chunk_message_fits_the_decode_buffer() {
        // When tonic reserves the message's length it may hold one HTTP/2 frame of it already:
        // at most a chunk's length (transport.rs) plus the 5-byte gRPC message header.
        let message = PutChunkRequest {
            chunk_id: "0".repeat(64),
            data: vec![7; DEFAULT_CHUNK_SIZE as usize].into(),
            chain: vec![
                NodeAddr {
                    id: "n".repeat(36),
                    addr: "http://[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535".into(),
                };
                MAX_REPLICATION as usize
            ],
        };
        assert!(5 + DEFAULT_CHUNK_SIZE as usize + message.encoded_len() <= DECODE_BUFFER);
    }
}
