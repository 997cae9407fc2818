# Vela: build the `vela` binary and run it on a slim Debian.
FROM rust:1-bookworm AS build
# nasm: openh264 builds its assembly with it (17–37 % faster decode).
RUN apt-get update && apt-get install -y --no-install-recommends nasm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY benches ./benches
COPY vendor ./vendor
RUN cargo build --release --locked --bin vela

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/vela /usr/local/bin/vela
COPY config /etc/vela
VOLUME /var/lib/vela
WORKDIR /var/lib/vela
ENTRYPOINT ["vela"]
CMD ["run", "--config", "/etc/vela", "--state", "/var/lib/vela"]
