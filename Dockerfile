# tierguard: a static-ish binary on a distroless, non-root base.
#   docker build -t tierguard:latest .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin tierguard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tierguard /usr/local/bin/tierguard
COPY policies /policies
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tierguard"]
CMD ["serve"]
