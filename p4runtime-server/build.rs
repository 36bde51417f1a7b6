//! Compiles the vendored P4Runtime v1.5.0 protos with protox (no protoc) and
//! generates prost messages and the tonic service; also writes the file
//! descriptor set, which the P4Info text-format parser needs at run time.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/p4/v1/p4runtime.proto",
        "proto/p4/config/v1/p4info.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("p4runtime_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Boxed: the big variants of `Entity`, so that decoding a 10,000-update
    // Write moves pointers rather than 400-byte messages at every level.
    tonic_prost_build::configure()
        .boxed(".p4.v1.Entity.entity.table_entry")
        .boxed(".p4.v1.Entity.entity.direct_counter_entry")
        .boxed(".p4.v1.Entity.entity.direct_meter_entry")
        .boxed(".p4.v1.Entity.entity.meter_entry")
        // Decodes each message from one `Bytes` (see src/codec.rs).
        .codec_path("crate::codec::P4rtCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
