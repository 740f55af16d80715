# Offline stand-in for docker.io/library/caddy:2-alpine (Crossport test stack), built by
# scripts/teststack/seeds/static.sh: a busybox root like the alpine stand-in plus Debian
# bookworm's caddy binary and the libc6/libzstd1 it is linked against, one folder per
# architecture (amd64/, arm64/, armv7/) and common/ for the rest. Same paths, variables and
# command as the official image; no RUN steps, so nothing here needs QEMU.
FROM scratch
ARG TARGETARCH
ARG TARGETVARIANT
ARG CADDY_VERSION=v2
COPY common/ /
COPY ${TARGETARCH}${TARGETVARIANT}/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CADDY_VERSION=${CADDY_VERSION} \
    XDG_CONFIG_HOME=/config \
    XDG_DATA_HOME=/data
VOLUME /config /data
EXPOSE 80 443 443/udp 2019
WORKDIR /srv
LABEL org.opencontainers.image.description="Crossport offline stand-in for caddy:2-alpine (Debian caddy + busybox)"
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
