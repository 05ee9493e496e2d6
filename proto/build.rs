//! Compiles `proto/bigfs.proto` with protox, so a fresh machine needs nothing but cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/bigfs.proto");
    let descriptors = protox::compile(["proto/bigfs.proto"], ["proto"])?;
    tonic_prost_build::configure()
        // Chunk payloads are handed from the decoder to disk and to the next hop without a copy.
        .bytes(".bigfs.v1.PutChunkRequest.data")
        .bytes(".bigfs.v1.GetChunkResponse.data")
        .bytes(".bigfs.v1.ChunkData.data")
        .bytes(".bigfs.v1.ChunkRead.data")
        .codec_path("crate::codec::BigfsCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
