# syntax=docker/dockerfile:1
# The easytier-probe image: `docker build -t easytier-probe:0.1.0 .` (docs/deploy.md). With no
# arguments it runs `serve`, configured by environment variables as the README's "Configuration" table says.
# tests/deploy.rs checks the command lines and variables here against the binary.

# The Rust release of the build: the one the project is built and tested with.
ARG RUST_VERSION=1.95

# --- build -----------------------------------------------------------------------------------
# Same Debian release as the runtime image (12, bookworm), so the binary finds the glibc it was
# linked against.
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The whole tree less .dockerignore: Cargo.toml names every target (a missing one fails the
# manifest), and easytier's build script needs protoc, which .cargo/config.toml points at
# tools/protoc, the one the protoc-bin-vendored crate ships: no protoc to install here.
COPY . .
# The `dist` profile (Cargo.toml): release with fat LTO, one codegen unit and symbols stripped.
# The store's directory is made here: the runtime image has no shell to make it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --bin easytier-probe \
    && install -D -m 0755 target/dist/easytier-probe /out/easytier-probe \
    && install -d -m 0700 /out/data

# --- runtime ---------------------------------------------------------------------------------
# distroless: glibc, libgcc_s and CA certificates, which is all the binary links against (ldd:
# libc, libm, libgcc_s); no shell, no package manager. The health check is the binary's own
# `healthcheck` command. The user is 10001:10001, as in earlier images, so existing volumes
# and the Nomad host volume (owned by 10001) keep working.
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="easytier-probe" \
      org.opencontainers.image.description="A probe node for EasyTier networks: fetches peers, checks them with a real EasyTier handshake, reports to a backend." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=build /out/easytier-probe /usr/local/bin/easytier-probe
COPY --from=build --chown=10001:10001 --chmod=0700 /out/data /var/lib/easytier-probe

# Reachable from outside the container (the binary's own default is 127.0.0.1:8080), and the
# store in the volume.
ENV LISTEN_ADDR=0.0.0.0:8080 \
    DATA_DIR=/var/lib/easytier-probe
VOLUME ["/var/lib/easytier-probe"]
EXPOSE 8080
USER 10001:10001

# Healthy while the API answers 200 ("degraded" after a failed job still answers 200: the
# process is up; the job history says what failed). `healthcheck` reads LISTEN_ADDR (0.0.0.0 is
# read on loopback) and gives up after 5 s itself.
HEALTHCHECK --interval=30s --timeout=10s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/easytier-probe", "healthcheck"]

# serve handles SIGTERM itself (jobs get 10 s, Offline is sent): give `docker stop` 30 s.
ENTRYPOINT ["/usr/local/bin/easytier-probe"]
CMD ["serve"]
