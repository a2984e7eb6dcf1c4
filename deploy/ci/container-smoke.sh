#!/usr/bin/env bash
# Where a container engine runs: builds the image from the Dockerfile, checks its title label and
# that it has no shell (distroless), starts it the way the spec's `docker run` example does, and
# checks that its HEALTHCHECK turns healthy, that /health answers 200 on the published port, and
# that `docker stop` ends it with exit 0. Where no engine answers (a docker client alone is not
# enough), it says so and checks nothing.
#
# The backend is 127.0.0.1:9 inside the container, where nothing listens: peer-fetch fails and is
# recorded, the API answers all the same, and nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "container-smoke: no container engine answers here; the image was not built or run"
  exit 0
fi

tag="easytier-probe:ci-$$"
name="easytier-probe-ci-$$"
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker rmi "$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT

DOCKER_BUILDKIT=1 docker build -t "$tag" --build-arg VERSION=ci --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" .
title=$(docker inspect -f '{{index .Config.Labels "org.opencontainers.image.title"}}' "$tag")
if [ "$title" != easytier-probe ]; then
  echo "container-smoke: label org.opencontainers.image.title is '$title', not easytier-probe" >&2
  exit 1
fi
# distroless: no shell in the image (the HEALTHCHECK is the binary's own command).
if docker run --rm --entrypoint /bin/sh "$tag" -c true >/dev/null 2>&1; then
  echo "container-smoke: the image has a shell; the runtime stage should be distroless" >&2
  exit 1
fi
docker run -d --name "$name" -p 127.0.0.1::8080 \
  -e DISTRIBUTED_MODE_ENABLED=true \
  -e BACKEND_BASE_URL=http://127.0.0.1:9 \
  -e NODE_TOKEN=ci-token \
  -e REGION=ci \
  "$tag" >/dev/null

status=starting
for _ in $(seq 1 60); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$name")
  [ "$status" = healthy ] && break
  if [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
    docker logs "$name" >&2
    echo "container-smoke: the container stopped" >&2
    exit 1
  fi
  sleep 2
done
if [ "$status" != healthy ]; then
  docker logs "$name" >&2
  echo "container-smoke: HEALTHCHECK says $status" >&2
  exit 1
fi

port=$(docker port "$name" 8080/tcp | head -n 1 | sed 's/.*://')
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /health HTTP/1.0\r\n\r\n' >&3
read -r line <&3
exec 3<&-
case "$line" in
  HTTP/1.?" 200 "*) ;;
  *) echo "container-smoke: GET /health on port $port answered: $line" >&2; exit 1 ;;
esac

docker stop -t 30 "$name" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
if [ "$code" != 0 ]; then
  docker logs "$name" >&2
  echo "container-smoke: serve exited $code on docker stop" >&2
  exit 1
fi
echo "container-smoke: image built; healthy, /health answers 200, stops with exit 0"
