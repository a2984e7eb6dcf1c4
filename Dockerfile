# syntax=docker/dockerfile:1
# The easytier-probe image: `docker build -t easytier-probe .` (docs/deploy.md). With no arguments
# it runs `serve`, configured by environment variables as the README's "Configuration" table says.
# tests/deploy.rs checks the command lines and variables here against the binary.

# The Rust release of the build: the one the project is built and tested with.
ARG RUST_VERSION=1.95

# --- build -----------------------------------------------------------------------------------
# Same Debian release as the runtime image, so the binary finds the glibc it was linked against.
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The whole tree less .dockerignore: Cargo.toml names every target (a missing one fails the
# manifest), and easytier's build script needs protoc, which .cargo/config.toml points at
# tools/protoc, the one the protoc-bin-vendored crate ships: no protoc to install here.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin easytier-probe \
    && install -D -m 0755 target/release/easytier-probe /out/easytier-probe

# --- runtime ---------------------------------------------------------------------------------
# debian-slim rather than distroless: HEALTHCHECK has to GET /health, and this image's bash can
# do it (/dev/tcp) with no curl or other package added. (`easytier-probe healthcheck` now does it
# without a shell; moving to it and to a smaller base is still to do.)
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 easytier-probe \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/easytier-probe --shell /usr/sbin/nologin easytier-probe \
    && install -d -m 0700 -o 10001 -g 10001 /var/lib/easytier-probe
COPY --from=build /out/easytier-probe /usr/local/bin/easytier-probe

# Reachable from outside the container (the binary's own default is 127.0.0.1:8080), and the
# store in the volume.
ENV LISTEN_ADDR=0.0.0.0:8080 \
    DATA_DIR=/var/lib/easytier-probe
VOLUME ["/var/lib/easytier-probe"]
EXPOSE 8080
USER 10001:10001

# Healthy while the API answers 200 ("degraded" after a failed job still answers 200: the
# process is up; the job history says what failed). Follows the port in LISTEN_ADDR.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${LISTEN_ADDR##*:} && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 4 status <&3 && [[ $status == HTTP/1.?' 200 '* ]]"]

# serve handles SIGTERM itself (jobs get 10 s, Offline is sent): give `docker stop` 30 s.
ENTRYPOINT ["/usr/local/bin/easytier-probe"]
CMD ["serve"]
