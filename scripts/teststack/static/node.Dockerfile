# Offline stand-in for docker.io/library/node:18-slim (Crossport test stack), built by
# scripts/teststack/seeds/static.sh from one mmdebstrap tar per architecture (amd64.tar,
# arm64.tar, armv7.tar): Debian bookworm (essential set) with nodejs 18 and npm. Debian puts
# node and npm in /usr/bin where the official image has /usr/local/bin; both are on PATH.
# ADD unpacks the tar with its owners and modes; no RUN steps, so nothing here needs QEMU.
FROM scratch
ARG TARGETARCH
ARG TARGETVARIANT
ARG NODE_VERSION=18
ADD ${TARGETARCH}${TARGETVARIANT}.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    NODE_VERSION=${NODE_VERSION}
LABEL org.opencontainers.image.description="Crossport offline stand-in for node:18-slim (Debian nodejs 18 + npm)"
CMD ["node"]
