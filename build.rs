//! Generates the gRPC extension contract's Rust types and service from src/grpc/protos.
//!
//! protox compiles the .proto files in Rust, so a build needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "src/grpc/protos";
    println!("cargo:rerun-if-changed={dir}");
    let files = ["extension.proto", "inferencing.proto", "media.proto"].map(|f| format!("{dir}/{f}"));
    let fds = protox::compile(&files, [dir])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
