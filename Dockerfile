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

# --- build ---------------------------------------------------------------
FROM golang:1.26 AS build
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
FROM almalinux:9-minimal
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

USER ${UID}:${GID}
# Fail the image build, not the first start, if the config and binary disagree.
RUN ["/usr/bin/rpm-ingestd", "--check-config", "-c", "/etc/rpm-ingestd/config.yml"]

# /srv/repo/storage (the tree nginx publishes) and /srv/repo/incoming (nginx's
# spool): one volume, so filing an upload is a hard link rather than a copy.
# Share it with the nginx container.
VOLUME /srv/repo
EXPOSE 5000
# No HEALTHCHECK: the minimal image has no HTTP client. Probe GET /healthz from
# the orchestrator (Kubernetes httpGet, or nginx's upstream) instead.
# Give the daemon time to drain on stop: docker run --stop-timeout 90.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/rpm-ingestd"]
CMD ["-c", "/etc/rpm-ingestd/config.yml"]
