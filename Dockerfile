# rpm-ingestd container image. NOT built or exercised by `make test` (no
# container engine in CI); see docs/deploy.md, "Running in containers".
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t rpm-ingestd .
#
# The daemon runs as uid/gid 101, the uid nginx workers use in the official
# nginx and nginxinc/nginx-unprivileged images. It must equal nginx's worker
# uid because nginx spools each upload as a 0600 file in 0700 directories and
# the daemon hard-links that very file; override with --build-arg UID=... GID=...
# if your nginx runs as someone else.

# Base images, pinned by digest. A tag (golang:1.26) moves whenever its
# publisher rebuilds it; a digest names one exact image, so two builds of the
# same commit get the same base. The digests are build arguments, empty by
# default (then the tag alone is used, unpinned): no registry was reachable
# where this file was written, and a made-up digest would be worse than none.
# To pin, or to move a pin to a newer image, get each digest with either of
#   skopeo inspect --format '{{.Digest}}' docker://docker.io/library/golang:1.26
#   skopeo inspect --format '{{.Digest}}' docker://docker.io/library/almalinux:9-minimal
# or
#   podman pull docker.io/library/golang:1.26 && podman image inspect --format '{{.Digest}}' docker.io/library/golang:1.26
# (the same for almalinux:9-minimal; docker: `docker buildx imagetools inspect IMAGE`), and write it as the
# default below (GOLANG_DIGEST=sha256:<64 hex digits>) or pass it with --build-arg GOLANG_DIGEST=sha256:...
# The digest of a multi-arch tag is its manifest list: the pin then still builds on every arch.
ARG GOLANG_IMAGE=docker.io/library/golang:1.26
ARG GOLANG_DIGEST=
ARG RUNTIME_IMAGE=docker.io/library/almalinux:9-minimal
ARG RUNTIME_DIGEST=

# --- build ---------------------------------------------------------------
FROM ${GOLANG_IMAGE}${GOLANG_DIGEST:+@}${GOLANG_DIGEST} AS build
WORKDIR /src
# Dependencies first, so source edits don't re-download modules.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Same flags as `make build`: static, reproducible paths, version stamped.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/rpm-ingestd ./cmd/rpm-ingestd

# --- runtime -------------------------------------------------------------
# RHEL-compatible userland, so createrepo_c is the version EL clients expect.
FROM ${RUNTIME_IMAGE}${RUNTIME_DIGEST:+@}${RUNTIME_DIGEST}
ARG UID=101
ARG GID=101
# shadow-utils only for groupadd/useradd. The spool and tree are created here
# so that a fresh named volume inherits their owner and modes.
RUN microdnf install -y --nodocs --setopt=install_weak_deps=0 createrepo_c shadow-utils \
    && microdnf clean all \
    && groupadd --system --gid "${GID}" rpm-ingestd \
    && useradd --system --uid "${UID}" --gid "${GID}" --home-dir /srv/repo \
        --no-create-home --shell /sbin/nologin rpm-ingestd \
    && install -d -m 0755 -o "${UID}" -g "${GID}" /srv/repo /srv/repo/storage \
    && install -d -m 0750 -o "${UID}" -g "${GID}" /srv/repo/incoming
COPY --from=build /out/rpm-ingestd /usr/bin/rpm-ingestd
# Listens on 0.0.0.0:5000 for the nginx container; otherwise as deploy/config.yml.
COPY deploy/config.container.yml /etc/rpm-ingestd/config.yml
# server.htpasswd: nginx asks the daemon about every login, so the user file
# belongs to this container. Mount yours over this empty placeholder (0 users:
# every login is refused until you do), readable by uid ${UID}.
RUN install -m 0644 /dev/null /etc/rpm-ingestd/htpasswd

USER ${UID}:${GID}
# Fail the image build, not the first start, if the config and binary disagree.
RUN ["/usr/bin/rpm-ingestd", "--check-config", "-c", "/etc/rpm-ingestd/config.yml"]

# /srv/repo/storage (the tree nginx publishes) and /srv/repo/incoming (nginx's
# spool): one volume, so filing an upload is a hard link rather than a copy.
# Share it with the nginx container.
VOLUME /srv/repo
EXPOSE 5000
# The daemon probes itself: GET /readyz on server.listen of this config (the
# same file as CMD's -c; change both if you mount your config elsewhere).
# Exit 0 ready, 1 not, with a one-line reason in `docker inspect`. buildah and
# podman build drop HEALTHCHECK from OCI-format images: build with
# `--format docker` there to keep it.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["/usr/bin/rpm-ingestd", "--probe", "-c", "/etc/rpm-ingestd/config.yml"]
# Give the daemon time to drain on stop: docker run --stop-timeout 120 (compose:
# stop_grace_period: 120s). That is the systemd unit's TimeoutStopSec; the
# daemon refuses to start when its longest stop (95s with config.container.yml)
# is over 110s, so 120 always covers it. Docker's default of 10s would kill it
# mid-index.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/rpm-ingestd"]
CMD ["-c", "/etc/rpm-ingestd/config.yml"]
